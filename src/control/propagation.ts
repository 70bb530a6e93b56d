// Has a config change reached the data plane? Proxies report the snapshot version they applied
// (configVersion); a change is out once every proxy reports that version or a later one.

/** A snapshot version `<epoch>.<counter>`: the epoch (base 36 ms) changes when the control plane restarts. */
function split(v: string): [number, number] | undefined {
  const m = /^([0-9a-z]+)\.(\d+)$/.exec(v);
  return m ? [parseInt(m[1]!, 36), Number(m[2])] : undefined;
}

/**
 * True when `have` is `want` or later: the same epoch with a counter at least as high, or a later
 * epoch (a restarted control plane loads the stored config, so its snapshots include the change).
 */
export function versionAtLeast(have: string | undefined, want: string): boolean {
  if (have === undefined) return false;
  if (have === want) return true;
  const h = split(have);
  const w = split(want);
  if (!h || !w) return false;
  return h[0] === w[0] ? h[1] >= w[1] : h[0] > w[0];
}

export interface ProxyVersion {
  instance: string;
  configVersion?: string;
}

export interface Propagation {
  upToDate: ProxyVersion[];
  lagging: ProxyVersion[];
}

export function propagation(proxies: ProxyVersion[], want: string): Propagation {
  const upToDate: ProxyVersion[] = [];
  const lagging: ProxyVersion[] = [];
  for (const p of proxies) (versionAtLeast(p.configVersion, want) ? upToDate : lagging).push(p);
  return { upToDate, lagging };
}

/**
 * Polls `list` until every proxy has applied `want` or the timeout passes; returns the last view
 * (lagging is empty on success). `progress` sees each poll, for a spinner.
 */
export async function waitForPropagation(
  list: () => Promise<ProxyVersion[]>,
  want: string,
  opts: { timeoutMs: number; everyMs?: number; progress?: (p: Propagation) => void },
): Promise<Propagation> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const p = propagation(await list(), want);
    opts.progress?.(p);
    if (!p.lagging.length || Date.now() >= deadline) return p;
    await new Promise((r) => setTimeout(r, Math.min(opts.everyMs ?? 250, Math.max(0, deadline - Date.now()))));
  }
}
