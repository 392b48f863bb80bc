// Entry point of the `styleclip` command (bin/styleclip.mjs loads this file through tsx).
import { main } from './run.ts';

// Long-lived commands (start, bot, worker) keep running through their own handles.
process.exitCode = await main(process.argv.slice(2));
