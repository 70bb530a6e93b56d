// Errors meant for people: one line saying what is wrong, and a hint saying how to fix it. The one such type
// across the CLI, the model's validation and the control plane's API (whose {error, hint} bodies carry it).

export class MeshError extends Error {
  readonly exitCode: number;
  /** The HTTP status the control plane's API answers this error with. */
  readonly status: number;

  constructor(
    message: string,
    readonly hint?: string,
    o: { exitCode?: number; status?: number } = {},
  ) {
    super(message);
    this.name = 'MeshError';
    this.exitCode = o.exitCode ?? 1;
    this.status = o.status ?? 400;
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

/** Turns a validation failure from shared code (a plain Error) into a one-line error with a hint. */
export function checked<T>(fn: () => T, hint: string): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof MeshError) throw err;
    throw new MeshError((err as Error).message, hint);
  }
}
