// Small in-memory pack descriptions for engine unit tests.
import type { PackJson } from '../../src/engine/pack.ts';
import { expectedLayers } from '../../src/engine/pack.ts';

/** A valid pack.json for a 16px generator with widths 8. */
export function tinyPackJson(): PackJson {
  return {
    format: 'styleclip-pack',
    version: 1,
    name: 'unit-16',
    untrained: true,
    resolution: 16,
    zDim: 8,
    wDim: 8,
    numWs: 6,
    styleLayout: expectedLayers(16).map(([name, resolution, wIndex, toRgb]) => ({ name, resolution, channels: 8, wIndex, toRgb })),
    clip: { embedDim: 4, contextLength: 77 },
    defaults: { neutral: 'face', targetTemplate: 'face with {}', strength: 4.1, threshold: null },
    mappers: [],
  };
}
