// Turning what a user typed into the [target, neutral] text pair of the global method.
import { EngineError } from './types.ts';

export interface TextDefaults {
  neutral: string;
  targetTemplate: string;
}

/** Longest prompt accepted before tokenising (the tokenizer enforces the real 77-token limit). */
export const MAX_PROMPT_CHARS = 300;

function cleanText(text: string, what: string): string {
  const t = text.replace(/\s+/g, ' ').trim();
  if (t.length === 0) throw new EngineError('empty_prompt', `the ${what} is empty: describe the edit, e.g. "curly hair"`);
  if (t.length > MAX_PROMPT_CHARS) {
    throw new EngineError('prompt_too_long', `the ${what} is too long (${t.length} characters); keep it under 77 CLIP tokens`);
  }
  return t;
}

function mentionsWord(text: string, word: string): boolean {
  const escaped = word.toLowerCase().replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^\\p{L}\\p{N}])${escaped}([^\\p{L}\\p{N}]|$)`, 'u').test(text.toLowerCase());
}

/**
 * The rule (docs/engine.md): with `neutral` given, both texts are used verbatim. Otherwise the
 * pack's neutral (e.g. "face") is the neutral text, and the prompt becomes the target through the
 * pack's template ("face with {}") unless it already mentions the neutral word ("smiling face").
 */
export function resolveTexts(prompt: string, neutral: string | undefined, defaults: TextDefaults): { target: string; neutral: string } {
  const p = cleanText(prompt, 'prompt');
  let pair: { target: string; neutral: string };
  if (neutral !== undefined) {
    pair = { target: p, neutral: cleanText(neutral, 'neutral text') };
  } else if (mentionsWord(p, defaults.neutral)) {
    pair = { target: p, neutral: defaults.neutral };
  } else {
    pair = { target: defaults.targetTemplate.replace('{}', () => p), neutral: defaults.neutral };
  }
  if (pair.target.toLowerCase() === pair.neutral.toLowerCase()) {
    throw new EngineError('same_text', `the target "${pair.target}" is the neutral text itself; describe a change, e.g. "smiling ${pair.neutral}"`);
  }
  return pair;
}
