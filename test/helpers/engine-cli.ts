// Spawns the real CLI (`node bin/styleclip.mjs …`) and collects exit code and output.
import { spawn } from 'node:child_process';
import { expect } from 'vitest';
import { join } from 'node:path';
import { ROOT } from './engine-packs.ts';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function styleclip(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin/styleclip.mjs'), ...args], {
      cwd: ROOT,
      env: { ...process.env, STYLECLIP_DEVICE: '', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Exit code `code` and exactly one stderr line starting "error: " that matches `pattern`. */
export function expectError(r: CliResult, code: number, pattern: RegExp): void {
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  expect(lines[0]).toMatch(pattern);
  expect(r.code).toBe(code);
}
