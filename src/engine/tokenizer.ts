// OpenAI CLIP's tokenizer (clip/simple_tokenizer.py) over a Hugging Face-layout tokenizer.json.
// Same steps as models/toolkit/styleclip_toolkit/bpe.py, which the tests compare against:
// NFC + straight quotes (our stand-in for ftfy.fix_text, see bpe.py), HTML-unescape twice,
// collapse whitespace, lower-case, split with CLIP's regex, byte-level BPE with "</w>" word ends.
// The file's normalizer/pre_tokenizer entries are ignored: Hugging Face's differ from OpenAI's
// (no HTML unescaping), and OpenAI's is what CLIP was trained with.
import { readFile } from 'node:fs/promises';
import { decodeHTML } from 'entities';
import { EngineError } from './types.ts';

const SOT = '<|startoftext|>';
const EOT = '<|endoftext|>';
/** Words whose BPE ids stay cached; the cache is cleared when full (prompts come from users). */
const CACHE_LIMIT = 50_000;

// Python `regex`'s \s (Unicode White_Space). JS's \s differs: it adds U+FEFF and lacks U+0085.
const WS = '\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const WS_RUNS = new RegExp(`[${WS}]+`, 'gu');
// Python's str.strip() also drops U+001C…U+001F.
const STRIP = new RegExp(`^[${WS}\\x1c-\\x1f]+|[${WS}\\x1c-\\x1f]+$`, 'gu');
// CLIP's pre-tokenizer, compiled with IGNORECASE like OpenAI's.
const PIECES = new RegExp(
  `<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^${WS}\\p{L}\\p{N}]+`,
  'giu',
);
// ftfy's uncurl_quotes.
const SINGLE_QUOTES = /[\u02bc\u2018-\u201b]/gu;
const DOUBLE_QUOTES = /[\u201c-\u201f]/gu;
// Python html.unescape's pattern; named references resolve through `entities` (the same HTML5 table).
const CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

/** Code points Python's html.unescape drops when written as numeric references. */
function droppedCodePoint(n: number): boolean {
  return (
    (n >= 0x1 && n <= 0x8) || n === 0xb || (n >= 0xe && n <= 0x1f) || n === 0x7f ||
    (n >= 0xfdd0 && n <= 0xfdef) || (n <= 0x10ffff && (n & 0xfffe) === 0xfffe)
  );
}

/** Python's html.unescape. */
function unescapeHtml(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(CHARREF, (ref: string, body: string) => {
    if (body[0] === '#') {
      const hex = body[1] === 'x' || body[1] === 'X';
      const n = parseInt(body.slice(hex ? 2 : 1).replace(/;$/, ''), hex ? 16 : 10);
      if (droppedCodePoint(n)) return '';
    }
    return decodeHTML(ref);
  });
}

function pyStrip(text: string): string {
  return text.replace(STRIP, '');
}

/** OpenAI's basic_clean + whitespace_clean + lower (with our ftfy stand-in). */
export function cleanText(text: string): string {
  let t = text.normalize('NFC').replace(SINGLE_QUOTES, "'").replace(DOUBLE_QUOTES, '"');
  t = pyStrip(unescapeHtml(unescapeHtml(t)));
  return pyStrip(t.replace(WS_RUNS, ' ')).toLowerCase();
}

/** GPT-2/CLIP's byte → printable character table. */
function bytesToUnicode(): string[] {
  const table: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCodePoint(printable ? b : 256 + extra++);
  }
  return table;
}

interface TokenizerJson {
  model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[] };
  added_tokens?: { id: number; content: string }[];
}

export class ClipTokenizer {
  private readonly byteChars = bytesToUnicode();
  private readonly encoder: Map<string, number>;
  /** "a b" → rank. */
  private readonly ranks: Map<string, number>;
  private readonly cache = new Map<string, number[]>();
  readonly sot: number;
  readonly eot: number;

  private constructor(vocab: Map<string, number>, merges: string[], sot: number, eot: number) {
    this.encoder = vocab;
    this.ranks = new Map(merges.map((m, i) => [m, i]));
    this.sot = sot;
    this.eot = eot;
  }

  static async load(tokenizerJsonPath: string): Promise<ClipTokenizer> {
    let doc: TokenizerJson;
    try {
      doc = JSON.parse(await readFile(tokenizerJsonPath, 'utf8')) as TokenizerJson;
    } catch (e) {
      throw new EngineError('bad_pack', `Cannot read CLIP tokenizer ${tokenizerJsonPath}: ${(e as Error).message}`);
    }
    const model = doc.model;
    if (!model || model.type !== 'BPE' || !model.vocab || !Array.isArray(model.merges)) {
      throw new EngineError('bad_pack', `${tokenizerJsonPath} is not a BPE tokenizer.json (model.vocab, model.merges)`);
    }
    const vocab = new Map(Object.entries(model.vocab));
    for (const t of doc.added_tokens ?? []) vocab.set(t.content, t.id);
    const sot = vocab.get(SOT);
    const eot = vocab.get(EOT);
    if (sot === undefined || eot === undefined) {
      throw new EngineError('bad_pack', `${tokenizerJsonPath} lacks the ${SOT} / ${EOT} tokens of a CLIP vocabulary`);
    }
    // Newer tokenizers files store merges as pairs, older ones as "a b" strings.
    const merges = model.merges.map((m) => (typeof m === 'string' ? m : m.join(' ')));
    return new ClipTokenizer(vocab, merges, sot, eot);
  }

  /** BPE ids of a text, without the start/end tokens. */
  encode(text: string): number[] {
    const ids: number[] = [];
    for (const piece of cleanText(text).match(PIECES) ?? []) {
      let bytes = '';
      for (const b of Buffer.from(piece, 'utf8')) bytes += this.byteChars[b];
      for (const id of this.bpe(bytes)) ids.push(id);
    }
    return ids;
  }

  /** [texts.length * contextLength] ids: sot, ids, eot, zero padding (like clip.tokenize). */
  tokenize(texts: string[], contextLength: number): BigInt64Array {
    return this.layout(texts.map((t) => this.encodeChecked(t, contextLength)), contextLength);
  }

  private encodeChecked(text: string, contextLength: number): number[] {
    const ids = this.encode(text);
    if (ids.length + 2 > contextLength) {
      throw new EngineError(
        'prompt_too_long',
        `Prompt is too long: ${ids.length} tokens, CLIP takes at most ${contextLength - 2} (after the start/end tokens); shorten it`,
      );
    }
    return ids;
  }

  private layout(encoded: number[][], length: number): BigInt64Array {
    const out = new BigInt64Array(encoded.length * length);
    encoded.forEach((ids, row) => {
      const base = row * length;
      out[base] = BigInt(this.sot);
      ids.forEach((id, i) => (out[base + 1 + i] = BigInt(id)));
      out[base + 1 + ids.length] = BigInt(this.eot);
    });
    return out;
  }

  /** Ids of one byte-level piece: merge the lowest-ranked adjacent pair until none is left. */
  private bpe(piece: string): number[] {
    if (piece === SOT) return [this.sot];
    if (piece === EOT) return [this.eot];
    const cached = this.cache.get(piece);
    if (cached) return cached;
    const chars = Array.from(piece);
    let word = [...chars.slice(0, -1), chars[chars.length - 1] + '</w>'];
    while (word.length > 1) {
      let best = '';
      let bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const rank = this.ranks.get(word[i] + ' ' + word[i + 1]);
        if (rank !== undefined && rank < bestRank) [best, bestRank] = [word[i] + ' ' + word[i + 1], rank];
      }
      if (bestRank === Infinity) break;
      const merged: string[] = [];
      for (let i = 0; i < word.length; i++) {
        if (i < word.length - 1 && word[i] + ' ' + word[i + 1] === best) merged.push(word[i] + word[++i]);
        else merged.push(word[i]);
      }
      word = merged;
    }
    const ids = word.map((symbol) => {
      const id = this.encoder.get(symbol);
      if (id === undefined) throw new EngineError('bad_pack', `CLIP vocabulary has no token "${symbol}"`);
      return id;
    });
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(piece, ids);
    return ids;
  }
}
