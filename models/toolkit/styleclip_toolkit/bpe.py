"""OpenAI CLIP's byte-level BPE tokenizer (`clip/simple_tokenizer.py`), plus vocab tools.

The algorithm is OpenAI's: clean the text, lower-case it, split it with CLIP's regex, map each
piece's UTF-8 bytes to printable characters, apply the merges in rank order with "</w>" marking
the end of a word. `src/engine/tokenizer.ts` implements the same steps and the tests compare both.

ftfy is not available here, so OpenAI's `ftfy.fix_text` step is replaced by the part of it that
changes ordinary chat input: NFC normalisation and straight quotes for curly ones (iOS and macOS
type "don’t"; ftfy makes it "don't", so "'t" stays one token). What we don't repair, unlike
ftfy: mojibake ("schÃ¶n"), Latin ligatures ("ﬁ"), full-width letters ("ＡＢ"), terminal escapes,
control characters and lone surrogates. Such text tokenizes differently from OpenAI's.

Run `python -m styleclip_toolkit.bpe --help` for the small CLI the TypeScript tests use.
"""

from __future__ import annotations

import argparse
import gzip
import html
import json
import random
import sys
import unicodedata
from collections import Counter
from functools import lru_cache

import regex as re

from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.templates import IMAGENET_TEMPLATES_79, PROMPT_WORDS

SOT = "<|startoftext|>"
EOT = "<|endoftext|>"
# OpenAI reads this many merges from the vocab file: 49152 tokens - 256 bytes - 2 specials.
MAX_MERGES = 49152 - 256 - 2
FULL_MERGES = 48894  # the official vocab: 512 + 48894 + 2 = 49408 tokens
TINY_MERGES = 400

# CLIP's pre-tokenizer, exactly as OpenAI wrote it (compiled with IGNORECASE).
PATTERN = re.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    re.IGNORECASE,
)
_SINGLE_QUOTES = re.compile("[\u02bc\u2018-\u201b]")  # ftfy.fixes.uncurl_quotes
_DOUBLE_QUOTES = re.compile("[\u201c-\u201f]")


@lru_cache()
def bytes_to_unicode():
    """Maps every byte to a printable character (OpenAI/GPT-2's table): printable Latin-1 bytes
    map to themselves, the rest to code points from 256 up, in byte order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def clean_text(text):
    """OpenAI's basic_clean + whitespace_clean + lower, with our ftfy stand-in (module docstring)."""
    text = unicodedata.normalize("NFC", text)
    text = _DOUBLE_QUOTES.sub('"', _SINGLE_QUOTES.sub("'", text))
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip().lower()


def pre_tokens(text):
    """The cleaned text's pieces, each as byte-level characters."""
    enc = bytes_to_unicode()
    return ["".join(enc[b] for b in piece.encode("utf-8")) for piece in PATTERN.findall(clean_text(text))]


def read_merges(vocab_gz):
    """Merge pairs of an OpenAI-format vocab file (a header line, then "a b" per line)."""
    try:
        with gzip.open(vocab_gz, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise ToolkitError(f"cannot read BPE vocab {vocab_gz}: {e}") from None
    merges = []
    for number, line in enumerate(lines[1:MAX_MERGES + 1], start=2):
        if not line:
            continue
        pair = tuple(line.split())
        if len(pair) != 2:
            raise ToolkitError(f"BPE vocab {vocab_gz} line {number} is not a merge pair: {line[:60]!r}")
        merges.append(pair)
    if not merges:
        raise ToolkitError(f"BPE vocab {vocab_gz} has no merges (expected OpenAI's bpe_simple_vocab_16e6.txt.gz)")
    return merges


def vocab_from_merges(merges):
    """OpenAI's token list: 256 byte characters, the same with "</w>", one per merge, then the specials."""
    base = list(bytes_to_unicode().values())
    return base + [b + "</w>" for b in base] + ["".join(m) for m in merges] + [SOT, EOT]


def merge_pair(symbols, pair):
    """Joins every occurrence of `pair`, left to right (OpenAI's bpe inner loop)."""
    out, i = [], 0
    while i < len(symbols):
        if i < len(symbols) - 1 and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


class SimpleTokenizer:
    def __init__(self, vocab_gz_path, merges=None):
        merges = read_merges(vocab_gz_path) if merges is None else [tuple(m) for m in merges]
        self.vocab = vocab_from_merges(merges)
        self.encoder = dict(zip(self.vocab, range(len(self.vocab))))  # a repeated string keeps its last id
        self.decoder = {i: t for t, i in self.encoder.items()}
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.byte_decoder = {c: b for b, c in bytes_to_unicode().items()}
        self.cache = {SOT: SOT, EOT: EOT}

    def bpe(self, token):
        """Space-separated BPE symbols of one byte-level piece."""
        if token in self.cache:
            return self.cache[token]
        word = list(token[:-1]) + [token[-1] + "</w>"]
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            best = min(pairs, key=lambda p: self.bpe_ranks.get(p, float("inf")))
            if best not in self.bpe_ranks:
                break
            word = merge_pair(word, best)
        self.cache[token] = " ".join(word)
        return self.cache[token]

    def encode(self, text):
        """BPE ids of a text, without start/end tokens."""
        return [self.encoder[t] for piece in pre_tokens(text) for t in self.bpe(piece).split(" ")]

    def decode(self, ids):
        text = "".join(self.decoder[i] for i in ids)
        return bytearray(self.byte_decoder[c] for c in text).decode("utf-8", errors="replace").replace("</w>", " ")


def too_long_message(n_tokens, context_length):
    return (f"Prompt is too long: {n_tokens} tokens, CLIP takes at most {context_length - 2} "
            f"(after the start/end tokens); shorten it")


def tokenize(tokenizer, texts, context_length=77):
    """Like clip.tokenize: LongTensor [N, context_length] of <sot> ids <eot>, zero-padded."""
    import torch  # here so the tokenizer CLI starts fast

    if isinstance(texts, str):
        texts = [texts]
    sot, eot = tokenizer.encoder[SOT], tokenizer.encoder[EOT]
    out = torch.zeros(len(texts), context_length, dtype=torch.long)
    for row, text in enumerate(texts):
        ids = [sot] + tokenizer.encode(text) + [eot]
        if len(ids) > context_length:
            raise ToolkitError(too_long_message(len(ids) - 2, context_length))
        out[row, :len(ids)] = torch.tensor(ids)
    return out


# ---------------------------------------------------------------------------------------------
# Vocab files for tests and benchmarks (the real one is OpenAI's bpe_simple_vocab_16e6.txt.gz)


def _learn_merges(words, n_merges):
    """Plain BPE training on a word-frequency table; ties go to the smallest pair, so it is
    deterministic. A pair whose result is already a token is skipped (keeps tokens unique)."""
    splits = {w: list(w[:-1]) + [w[-1] + "</w>"] for w in words}
    known = set(vocab_from_merges([]))
    merges = []
    while len(merges) < n_merges:
        counts = Counter()
        for w, symbols in splits.items():
            for pair in zip(symbols, symbols[1:]):
                if "".join(pair) not in known:
                    counts[pair] += words[w]
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append(best)
        known.add("".join(best))
        splits = {w: merge_pair(symbols, best) for w, symbols in splits.items()}
    return merges


def _extend_merges(merges, n_merges, seed):
    """Adds random but valid merges (existing non-final token + existing token, both at most 8
    characters, result new) until n_merges."""
    rng = random.Random(seed)
    tokens = vocab_from_merges(merges)[:-2]
    known = set(tokens)
    short = [t for t in tokens if len(t.replace("</w>", "")) <= 8]
    prefixes = [t for t in short if not t.endswith("</w>")]
    merges = list(merges)
    while len(merges) < n_merges:
        a, b = rng.choice(prefixes), rng.choice(short)
        if a + b in known:
            continue
        merges.append((a, b))
        known.add(a + b)
        if len((a + b).replace("</w>", "")) <= 8:
            short.append(a + b)
            if not b.endswith("</w>"):
                prefixes.append(a + b)
    return merges


def corpus_words():
    """Pre-token frequencies of the templates filled with the prompt words."""
    texts = [t.format(w) for t in IMAGENET_TEMPLATES_79 for w in ("face", "person")] + PROMPT_WORDS.split()
    return Counter(p for text in texts for p in pre_tokens(text))


def _write_vocab(out_path, merges, header):
    text = "\n".join([header] + [" ".join(m) for m in merges]) + "\n"
    with open(out_path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
        f.write(text.encode("utf-8"))  # no name, no time in the header: same bytes every run
    return out_path


def make_tiny_vocab(out_path, n_merges=TINY_MERGES):
    """Writes a small OpenAI-format vocab learned from the templates and common prompt words.

    Vocabulary size: 512 + n_merges + 2. Beyond what the corpus yields, random merges fill up."""
    merges = _extend_merges(_learn_merges(corpus_words(), n_merges), n_merges, seed=0)
    return _write_vocab(out_path, merges, "#version: styleclip tiny vocab")


def make_random_vocab(out_path, n_merges=FULL_MERGES, seed=0):
    """A vocab with the official size (49408 tokens by default) for benchmark packs: the tiny
    vocab's learned merges, then random valid merges. Same algorithm, random weights' words."""
    merges = _extend_merges(_learn_merges(corpus_words(), TINY_MERGES), n_merges, seed)
    return _write_vocab(out_path, merges, "#version: styleclip random vocab")


def tiny_vocab_size(n_merges=TINY_MERGES):
    return 512 + n_merges + 2


def write_tokenizer_json(vocab_gz, out_path):
    """Writes the vocab as a Hugging Face tokenizers file, laid out like CLIPTokenizerFast's.

    Our TypeScript tokenizer reads model.vocab and model.merges and applies OpenAI's cleaning
    itself; the normalizer/pre_tokenizer entries are there for Hugging Face loaders."""
    tok = SimpleTokenizer(vocab_gz)
    merges = list(tok.bpe_ranks)
    sot, eot = tok.encoder[SOT], tok.encoder[EOT]

    def special(content, i):
        return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": True, "special": True}

    doc = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [special(SOT, sot), special(EOT, eot)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFC"},
            {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "},
            {"type": "Lowercase"},
        ]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"},
             "behavior": "Removed", "invert": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ]},
        "post_processor": {"type": "RobertaProcessing", "sep": [EOT, eot], "cls": [SOT, sot],
                           "trim_offsets": False, "add_prefix_space": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": EOT, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "</w>", "fuse_unk": False, "byte_fallback": False,
                  "vocab": tok.encoder, "merges": [" ".join(m) for m in merges]},
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
    return out_path


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m styleclip_toolkit.bpe", description=(
        "CLIP BPE helpers. --make-tiny/--make-random write a vocab and its tokenizer.json; "
        "--encode reads a JSON list of texts on stdin and prints their ids (no start/end tokens)."))
    p.add_argument("--vocab", required=True, help="OpenAI-format vocab .txt.gz (written first with --make-*)")
    p.add_argument("--make-tiny", action="store_true")
    p.add_argument("--make-random", action="store_true")
    p.add_argument("--tokenizer-json", help="also write this tokenizer.json")
    p.add_argument("--encode", action="store_true")
    args = p.parse_args(argv)
    try:
        if args.make_tiny:
            make_tiny_vocab(args.vocab)
        if args.make_random:
            make_random_vocab(args.vocab)
        if args.tokenizer_json:
            write_tokenizer_json(args.vocab, args.tokenizer_json)
        if args.encode:
            tok = SimpleTokenizer(args.vocab)
            texts = json.loads(sys.stdin.buffer.read().decode("utf-8"))
            json.dump([tok.encode(t) for t in texts], sys.stdout)
    except ToolkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
