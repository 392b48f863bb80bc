"""The Python CLIP tokenizer (OpenAI's simple_tokenizer algorithm) and the vocab tools.

test/tokenizer.test.ts checks that the TypeScript tokenizer gives the same ids as this one."""

import gzip
import json

import pytest

from styleclip_toolkit.bpe import (EOT, SOT, SimpleTokenizer, bytes_to_unicode, clean_text, main, make_random_vocab,
                                   make_tiny_vocab, pre_tokens, tiny_vocab_size, tokenize, write_tokenizer_json)
from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.templates import IMAGENET_TEMPLATES_79


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    return make_tiny_vocab(tmp_path_factory.mktemp("vocab") / "bpe_tiny.txt.gz")


@pytest.fixture(scope="module")
def tok(vocab):
    return SimpleTokenizer(vocab)


def test_cleaning_like_openai():
    assert clean_text("  Face\tWith\n\nBLUE   Eyes  ") == "face with blue eyes"
    assert clean_text("&amp;lt;b&amp;gt; &eacute;t&eacute;") == "<b> été"  # unescaped twice
    assert clean_text("cafe\u0301") == "caf\u00e9"  # NFC
    assert clean_text("don’t “go”") == "don't \"go\""  # ftfy's uncurl_quotes
    assert clean_text("\u00a0x\u3000y\u0085") == "x y"  # Unicode whitespace
    assert clean_text("ΟΔΟΣ İ") == "οδος i\u0307"  # Python's full lower-casing


def raw(piece):
    """A byte-level piece back as text."""
    dec = {c: b for b, c in bytes_to_unicode().items()}
    return bytes(dec[c] for c in piece).decode("utf-8")


def test_pre_tokenizer_splits_like_clip():
    def pieces(text):
        return [raw(p) for p in pre_tokens(text)]

    assert pieces("It's don't we'll") == ["it", "'s", "don", "'t", "we", "'ll"]
    assert pieces("123 abc!!?") == ["1", "2", "3", "abc", "!!?"]
    assert pieces("東京😀👍 x") == ["東京", "😀👍", "x"]
    assert pieces("a<|endoftext|>b") == ["a", "<|endoftext|>", "b"]


def test_ids_of_single_characters_are_openais(tok):
    # Byte-level ids don't depend on the merges: 'a</w>' is 320 and '!</w>' 256 in OpenAI's vocab too.
    assert tok.encode("a") == [320]
    assert tok.encode("A!") == [320, 256]
    assert tok.encode("!") == [256]
    assert tok.encode("é") == [tok.encoder["Ã"], tok.encoder["©</w>"]]  # two UTF-8 bytes


def test_tricky_text(tok):
    assert tok.encode("FACE With Blue EYES") == tok.encode("face with blue eyes")
    assert tok.encode("a   photo\n\tof") == tok.encode("a photo of")
    assert tok.encode("&amp;") == tok.encode("&")
    assert tok.encode("don’t") == tok.encode("don't")
    assert tok.encode("Zoë") == tok.encode("zoe\u0308")
    assert tok.encode("<|endoftext|>") == [tok.encoder[EOT]]
    for text in ["a photo of a face.", "émoji 😀👨‍👩‍👧 東京", "it's 42 &lt;3", "x" * 30]:
        assert tok.decode(tok.encode(text)).strip() == " ".join(raw(p) for p in pre_tokens(text))


def test_template_words_are_single_tokens(tok):
    for word in ["a", "photo", "of", "the", "face", "person", "sculpture", "rendering"]:
        assert len(tok.encode(word)) == 1, word
    assert len(tok.encode("a bad photo of a face.")) == 7  # the "." is a piece of its own


def test_tokenize_pads_like_clip(tok):
    ids = tokenize(tok, ["a photo", ""], context_length=77)
    assert ids.shape == (2, 77)
    sot, eot = tok.encoder[SOT], tok.encoder[EOT]
    assert ids[0, :4].tolist() == [sot, *tok.encode("a photo"), eot] and ids[0, 4:].eq(0).all()
    assert ids[1, :3].tolist() == [sot, eot, 0]
    assert int(ids.argmax(dim=-1)[0]) == 3  # EOT is the highest id


def test_too_long_prompts_are_refused(tok):
    assert tokenize(tok, " ".join(["1"] * 75)).shape == (1, 77)
    with pytest.raises(ToolkitError, match=r"^Prompt is too long: 76 tokens, CLIP takes at most 75 "):
        tokenize(tok, " ".join(["1"] * 76))


def test_templates_are_styleclips_79():
    assert len(IMAGENET_TEMPLATES_79) == 79 == len(set(IMAGENET_TEMPLATES_79))
    assert "a photo of many {}." not in IMAGENET_TEMPLATES_79
    assert IMAGENET_TEMPLATES_79[:2] == ["a bad photo of a {}.", "a sculpture of a {}."]
    assert IMAGENET_TEMPLATES_79[-1] == "a tattoo of the {}."
    assert all(t.count("{}") == 1 for t in IMAGENET_TEMPLATES_79)


def test_tiny_vocab_is_deterministic_and_sized(vocab, tmp_path, tok):
    again = make_tiny_vocab(tmp_path / "again.txt.gz")
    assert again.read_bytes() == vocab.read_bytes()
    assert len(tok.vocab) == tiny_vocab_size() == 914
    assert len(set(tok.vocab)) == len(tok.vocab)
    assert [tok.vocab[-2], tok.vocab[-1]] == [SOT, EOT]


def test_random_vocab_has_the_official_size(tmp_path):
    path = make_random_vocab(tmp_path / "random.txt.gz")
    lines = gzip.open(path, "rt", encoding="utf-8").read().split("\n")
    assert lines[0].startswith("#version")
    t = SimpleTokenizer(path)
    assert len(t.vocab) == len(set(t.vocab)) == 49408
    assert (t.encoder[SOT], t.encoder[EOT]) == (49406, 49407)
    # Every merge joins two tokens that exist before it, so BPE can reach every token.
    seen = set(t.vocab[:512])
    for a, b in t.bpe_ranks:
        assert a in seen and b in seen and not a.endswith("</w>")
        seen.add(a + b)


def test_tokenizer_json_has_hugging_face_layout(vocab, tok, tmp_path):
    path = write_tokenizer_json(vocab, tmp_path / "tokenizer.json")
    doc = json.loads(path.read_text(encoding="utf-8"))
    model = doc["model"]
    assert model["type"] == "BPE" and model["end_of_word_suffix"] == "</w>"
    assert model["vocab"] == tok.encoder and len(model["merges"]) == len(tok.bpe_ranks)
    assert model["merges"][0] == " ".join(next(iter(tok.bpe_ranks)))
    assert [(t["content"], t["id"]) for t in doc["added_tokens"]] == [(SOT, 912), (EOT, 913)]
    assert [n["type"] for n in doc["normalizer"]["normalizers"]] == ["NFC", "Replace", "Lowercase"]
    assert doc["post_processor"]["cls"] == [SOT, 912]


def test_bad_vocab_files_are_refused(tmp_path):
    with pytest.raises(ToolkitError, match="cannot read BPE vocab"):
        SimpleTokenizer(tmp_path / "missing.txt.gz")
    (tmp_path / "plain.txt").write_text("#version\na b\n")
    with pytest.raises(ToolkitError, match="cannot read BPE vocab"):
        SimpleTokenizer(tmp_path / "plain.txt")
    with gzip.open(tmp_path / "bad.txt.gz", "wt") as f:
        f.write("#version\na b c\n")
    with pytest.raises(ToolkitError, match="line 2 is not a merge pair"):
        SimpleTokenizer(tmp_path / "bad.txt.gz")


def test_cli_encodes_json_texts(vocab, tok, capsys, monkeypatch):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(json.dumps(["a photo", "é"]).encode())))
    assert main(["--vocab", str(vocab), "--encode"]) == 0
    assert json.loads(capsys.readouterr().out) == [tok.encode("a photo"), tok.encode("é")]
