// Terminal output: the context banner, spinners for waits, and kubectl-style tables.
import chalk from 'chalk';
import ora, { type Ora } from 'ora';
import Table from 'cli-table3';

/** Every command says which platform and state it acts on (on stderr, so stdout stays scriptable). */
export function banner(platform: string, where: string): void {
  process.stderr.write(chalk.dim(`platform: ${platform} · state: ${where}\n`));
}

export function spinner(text: string): Ora {
  return ora({ text, stream: process.stderr, isEnabled: process.stderr.isTTY === true }).start();
}

/** Runs a step under a spinner: √ on success, × with the error on failure. */
export async function step<T>(text: string, fn: () => Promise<T>, done?: (v: T) => string): Promise<T> {
  // Without a terminal there is nothing to animate: print only the outcome.
  const s = process.stderr.isTTY ? spinner(text) : undefined;
  const end = (symbol: string, line: string) =>
    s ? s.stopAndPersist({ symbol, text: line }) : process.stderr.write(`${symbol} ${line}\n`);
  try {
    const v = await fn();
    end(chalk.green('√'), done ? done(v) : text);
    return v;
  } catch (err) {
    end(chalk.red('×'), text);
    throw err;
  }
}

/** A borderless table with upper-case headings, as kubectl and linkerd print. */
export function table(head: string[], rows: (string | number)[][]): string {
  const t = new Table({
    head,
    chars: {
      top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '',
      'bottom-right': '', left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '   ',
    },
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
  });
  for (const r of rows) t.push(r.map(String));
  return t.toString().split('\n').map((l) => l.trimEnd()).join('\n');
}

export function json(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}
