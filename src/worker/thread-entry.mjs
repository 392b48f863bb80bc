// Plain-JS entry for the worker thread: registers tsx so thread.ts (TypeScript) can load.
import { register } from 'tsx/esm/api';

register();
await import('./thread.ts');
