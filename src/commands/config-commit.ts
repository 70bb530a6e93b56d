// Change second: the step `mesh route` and `mesh policy` share: store the edited (and validated) document unless
// unchanged, then wait (bounded) until every proxy has applied it.
import type { Command } from 'commander';
import { checked } from './context.js';
import { waitForPropagation } from '../control/propagation.js';
import type { EditableConfig, StoredConfig } from '../api/config-store.js';
import { parseDuration } from '../util/duration.js';
import { MeshError } from '../util/errors.js';
import { step } from '../ui/output.js';

export interface WaitFlags {
  wait: boolean;
  waitTimeout: string;
}

export function waitOptions(c: Command): Command {
  return c
    .option('--no-wait', 'do not wait for the proxies to apply the change')
    .option('--wait-timeout <duration>', 'how long to wait for every proxy', '30s');
}

export interface CommitText {
  /** Printed when the stored document would not change. */
  unchanged: string;
  /** What was done, e.g. "route reviews applied". */
  done: string;
  /** Leads the lagging-proxies error, e.g. "route reviews". */
  stored: string;
}

/**
 * Stores through update (which runs the command's edit on the document read, possibly again after a write conflict)
 * unless the edit changes nothing, then waits for the proxies.
 */
export async function storeAndWait(
  store: Pick<EditableConfig, 'endpoints' | 'waitsForProxies'>,
  update: () => Promise<StoredConfig | undefined>,
  said: CommitText | (() => CommitText),
  w: WaitFlags,
): Promise<void> {
  const timeoutMs = checked(() => parseDuration(w.waitTimeout, '--wait-timeout'), 'e.g. --wait-timeout 30s');
  const stored = await update();
  // Said after the update: what was done may depend on the attempt that was stored.
  const text = typeof said === 'function' ? said() : said;
  if (!stored) {
    console.log(text.unchanged);
    return;
  }
  if (store.waitsForProxies === false) {
    console.log(`${text.done} (resourceVersion ${stored.version}); the control plane pushes it to the proxies`);
    return;
  }
  if (!w.wait) {
    console.log(`${text.done} (config version ${stored.version}); not waiting for proxies`);
    return;
  }
  await step('waiting for every proxy to apply it', async () => {
    const r = await waitForPropagation(() => store.endpoints(), stored.version, { timeoutMs });
    const total = r.upToDate.length + r.lagging.length;
    if (r.lagging.length) {
      const who = r.lagging.map((x) => `${x.instance} (at ${x.configVersion ?? 'none'})`).join(', ');
      throw new MeshError(
        `${text.stored} stored as config version ${stored.version}, but ${r.lagging.length}/${total} proxies have not applied it after ${w.waitTimeout}: ${who}`,
        "they get it when they reach the control plane again; 'mesh workloads' shows whether they run",
      );
    }
    return total;
  }, (total) => `${text.done}; ${total}/${total} proxies up to date`);
}
