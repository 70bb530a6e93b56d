// The tests' one child-process starter: output kept for failure messages, start-up awaited on what
// the process prints (bounded), and a stop that never hangs (SIGTERM, then SIGKILL).
import { spawn, type ChildProcess } from 'node:child_process';

export interface Started {
  readonly child: ChildProcess;
  /** stdout and stderr so far, interleaved. */
  output(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** Waits until `match` finds something in the output; fails if the process exits first or after timeoutMs. */
  until(what: string, match: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  until<T>(what: string, match: (out: string) => T | undefined, timeoutMs?: number): Promise<T>;
  /** SIGTERM, then SIGKILL after graceMs; resolves with the exit code (null if it had to be killed). */
  stop(graceMs?: number): Promise<number | null>;
}

export function start(command: string, args: string[], o: { env?: NodeJS.ProcessEnv; cwd?: string; name?: string } = {}): Started {
  const child = spawn(command, args, { env: o.env ?? process.env, cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const name = o.name ?? `${command} ${args.join(' ')}`;
  let out = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (out += c));
  const exited = new Promise<number | null>((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    output: () => out,
    exited,
    until(what: string, match: RegExp | ((out: string) => unknown), timeoutMs = 30_000): Promise<never> {
      const test = (): unknown => (typeof match === 'function' ? match(out) : match.exec(out) ?? undefined);
      return new Promise((resolve, reject) => {
        const done = (err?: Error, v?: unknown) => {
          clearTimeout(timer);
          child.stdout!.off('data', onData);
          child.stderr!.off('data', onData);
          child.off('exit', onExit);
          if (err) reject(err);
          else resolve(v as never);
        };
        const onData = () => {
          const v = test();
          if (v !== undefined) done(undefined, v);
        };
        const onExit = (code: number | null) => done(new Error(`${name} exited (${code}) before ${what}:\n${out}`));
        const timer = setTimeout(() => done(new Error(`${name}: no ${what} within ${timeoutMs} ms:\n${out}`)), timeoutMs);
        child.stdout!.on('data', onData);
        child.stderr!.on('data', onData);
        child.on('exit', onExit);
        if (!running()) onExit(child.exitCode);
        else onData();
      });
    },
    async stop(graceMs = 5000) {
      if (!running()) return exited;
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([exited, new Promise<'timeout'>((r) => (timer = setTimeout(r, graceMs, 'timeout')))]);
      clearTimeout(timer);
      if (code !== 'timeout') return code;
      child.kill('SIGKILL');
      await exited;
      return null;
    },
  };
}
