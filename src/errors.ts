// Errors shared by the process entry points (CLI commands and `styleclip start|bot|worker`).

/** Bad command line: printed as one line, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
