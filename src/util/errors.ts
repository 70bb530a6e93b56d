// Errors meant for people: one line saying what is wrong, and a hint saying how to fix it.

export class MeshError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'MeshError';
  }
}

/** The one line a person sees for any error; stack traces only with --verbose. */
export function formatError(err: unknown): string {
  if (err instanceof MeshError) return err.hint ? `${err.message} — ${err.hint}` : err.message;
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}
