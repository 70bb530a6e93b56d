// Terminal output: the context banner, spinners for waits, and kubectl-style tables.
import chalk from 'chalk';
import type { Ora } from 'ora';

/** Every command says which platform and state it acts on (on stderr, so stdout stays scriptable). */
export function banner(platform: string, where: string, label = 'state'): void {
  process.stderr.write(chalk.dim(`platform: ${platform} · ${label}: ${where}\n`));
}

// ora and cli-table3 load on first use: a sidecar process never needs them.
export async function spinner(text: string): Promise<Ora> {
  const { default: ora } = await import('ora');
  return ora({ text, stream: process.stderr, isEnabled: process.stderr.isTTY === true }).start();
}

/** Runs a step under a spinner: √ on success, × with the error on failure. */
export async function step<T>(text: string, fn: () => Promise<T>, done?: (v: T) => string): Promise<T> {
  // Without a terminal there is nothing to animate: print only the outcome.
  const s = process.stderr.isTTY ? await spinner(text) : undefined;
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

export function json(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}
