// The TypeScript CLIP tokenizer must give the Python toolkit's ids (OpenAI's algorithm) on any text.
// Vocabularies and expected ids come from `python -m styleclip_toolkit.bpe` at test time.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipTokenizer } from '../src/engine/tokenizer.ts';
import { EngineError } from '../src/engine/types.ts';

const dir = mkdtempSync(join(tmpdir(), 'clip-tok-'));

function bpeCli(args: string[], input?: string): string {
  return execFileSync('bash', ['scripts/toolkit.sh', '-m', 'styleclip_toolkit.bpe', ...args], {
    input,
    encoding: 'utf8',
  });
}

/** Writes a vocab and its tokenizer.json (make: --make-tiny or --make-random) and returns Python's ids. */
function makeVocab(make: string, vocab: string, json: string, texts: string[]): number[][] {
  const out = bpeCli(['--vocab', vocab, make, '--tokenizer-json', json, '--encode'], JSON.stringify(texts));
  return JSON.parse(out) as number[][];
}

const TRICKY = [
  'a photo of a face.',
  'Face With BLUE Eyes',
  'CURLY hair!!! ...and a beard?!',
  'café crème brûlée, naïve Zoë, Ångström',
  'cafe\u0301 (combining accent, NFC makes it é)',
  'emoji 😀👍🏽 👨‍👩‍👧 and ❤️',
  '東京タワー 北京 서울 한국어',
  'Москва ΟΔΟΣ Straße İstanbul',
  '  repeated    spaces   and\ttabs\nnewlines\r\n  ',
  '\u00a0nbsp\u2003em-space\u3000ideographic\u0085nel\ufeffbom\u001cfs',
  'html &amp; entities &lt;b&gt; &quot;q&quot; &eacute; &#39;s &#x1F600; &amp;amp; &notit; &#1; &ampx',
  'numbers 123 4.5 1,000 ²³ ½ Ⅻ ٣',
  "apostrophes: it's don't we're I've I'm you'll he'd IT'S DON'T 'ſ",
  'curly quotes: don’t it’s “quoted” ‘single’ ʼmodifier',
  '<|startoftext|> special <|endoftext|> tokens &lt;|endoftext|&gt;',
  'punctuation: @#$%^&*()_+-=[]{}|;\':",./<>?`~ — – … «»',
  'a',
  '',
  '   ',
  'x'.repeat(40),
];

/** Deterministic random strings over an awkward alphabet. */
function fuzzTexts(n: number): string[] {
  const pool = Array.from("aZ é ñ ß 1 9 ' ’ \" & ; # x < > . , ! \t \n  東 😀 ‍ ́ İ Σ ς ­ ﬁ Ａ");
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  return Array.from({ length: n }, () =>
    Array.from({ length: 1 + Math.floor(rand() * 30) }, () => pool[Math.floor(rand() * pool.length)]).join(''),
  );
}

let tiny: ClipTokenizer;
const tinyJson = join(dir, 'tokenizer.json');
const FUZZ = fuzzTexts(300);
let expectedTricky: number[][];
let expectedFuzz: number[][];

beforeAll(async () => {
  const ids = makeVocab('--make-tiny', join(dir, 'tiny.txt.gz'), tinyJson, [...TRICKY, ...FUZZ]);
  [expectedTricky, expectedFuzz] = [ids.slice(0, TRICKY.length), ids.slice(TRICKY.length)];
  tiny = await ClipTokenizer.load(tinyJson);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ClipTokenizer (tiny vocab)', () => {
  it('matches the Python tokenizer on tricky text', () => {
    TRICKY.forEach((text, i) => expect(tiny.encode(text), JSON.stringify(text)).toEqual(expectedTricky[i]));
  });

  it('matches the Python tokenizer on random awkward strings', () => {
    FUZZ.forEach((text, i) => expect(tiny.encode(text), JSON.stringify(text)).toEqual(expectedFuzz[i]));
  });

  it('lays out sot, ids, eot and zero padding per row like clip.tokenize', () => {
    const ids = tiny.encode('a photo of a face.');
    const out = tiny.tokenize(['a photo of a face.', ''], 77);
    expect(out.length).toBe(2 * 77);
    const row0 = Array.from(out.slice(0, 77), Number);
    expect(row0.slice(0, ids.length + 2)).toEqual([tiny.sot, ...ids, tiny.eot]);
    expect(row0.slice(ids.length + 2).every((v) => v === 0)).toBe(true);
    expect(Array.from(out.slice(77, 80), Number)).toEqual([tiny.sot, tiny.eot, 0]);
    // EOT has the highest id: the text encoder takes its features at argmax.
    expect(Math.max(...row0)).toBe(tiny.eot);
  });

  it('refuses a prompt longer than the context with a clear EngineError', () => {
    const long = Array.from({ length: 80 }, (_, i) => String(i % 10)).join(' '); // one token per digit
    expect(() => tiny.tokenize([long], 77)).toThrowError(EngineError);
    expect(() => tiny.tokenize([long], 77)).toThrowError(/^Prompt is too long: 80 tokens, CLIP takes at most 75/);
    try {
      tiny.tokenize([long], 77);
    } catch (e) {
      expect((e as EngineError).code).toBe('prompt_too_long');
    }
    // Exactly 75 tokens fit.
    const fits = Array.from({ length: 75 }, (_, i) => String(i % 10)).join(' ');
    expect(Number(tiny.tokenize([fits], 77)[76])).toBe(tiny.eot);
  });

  it('reads tokenizer.json files whose merges are [a, b] pairs (newer tokenizers layout)', async () => {
    const doc = JSON.parse(readFileSync(tinyJson, 'utf8'));
    doc.model.merges = doc.model.merges.map((m: string) => m.split(' '));
    const pairsPath = join(dir, 'pairs.json');
    writeFileSync(pairsPath, JSON.stringify(doc));
    const pairs = await ClipTokenizer.load(pairsPath);
    for (const text of TRICKY) expect(pairs.encode(text)).toEqual(tiny.encode(text));
  });

  it('refuses a file that is not a CLIP BPE tokenizer.json', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ model: { type: 'WordPiece', vocab: {} } }));
    await expect(ClipTokenizer.load(bad)).rejects.toThrowError(/not a BPE tokenizer\.json/);
    await expect(ClipTokenizer.load(join(dir, 'missing.json'))).rejects.toThrowError(/Cannot read CLIP tokenizer/);
  });
});

describe('ClipTokenizer (full-size random vocab)', () => {
  it('has the official 49408-token layout and matches Python', async () => {
    const json = join(dir, 'random.json');
    const texts = [...TRICKY, ...FUZZ.slice(0, 50)];
    const expected = makeVocab('--make-random', join(dir, 'random.txt.gz'), json, texts);
    const tok = await ClipTokenizer.load(json);
    expect([tok.sot, tok.eot]).toEqual([49406, 49407]);
    texts.forEach((text, i) => expect(tok.encode(text), JSON.stringify(text)).toEqual(expected[i]));
  });
});
