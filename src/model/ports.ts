// Port lists as operators write them (`3306,6379`, `8000-8100`): --opaque-ports, and on Kubernetes
// the mesh.io/opaque-ports annotation. Pure.

/** A set of ports, as ranges: a list of 1-65535 costs no more than one port. */
export class PortSet {
  constructor(readonly ranges: readonly (readonly [number, number])[]) {}

  has(port: number): boolean {
    for (const [lo, hi] of this.ranges) if (port >= lo && port <= hi) return true;
    return false;
  }

  get size(): number {
    return this.ranges.length;
  }

  toString(): string {
    return this.ranges.map(([lo, hi]) => (lo === hi ? String(lo) : `${lo}-${hi}`)).join(',');
  }
}

/** Parses `3306,6379,8000-8100`; throws an Error naming the first bad entry. */
export function parsePortList(text: string): PortSet {
  const ranges: [number, number][] = [];
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part);
    const lo = m ? Number(m[1]) : NaN;
    const hi = m?.[2] !== undefined ? Number(m[2]) : lo;
    if (!m || lo < 1 || hi > 65535 || hi < lo) throw new Error(`'${part}' is not a port (1-65535) or a range like 8000-8100`);
    ranges.push([lo, hi]);
  }
  return new PortSet(ranges);
}

/** An upstream listener as `mesh run --upstream` declares it. */
export interface UpstreamDecl {
  /** service[.namespace]:port, as the app would name the destination. */
  authority: string;
  /** The local port (on 127.0.0.1) the app connects to. */
  listenPort: number;
}

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Parses `redis:6379=127.0.0.1:16379` (or `redis.cache:6379=16379`); throws an Error saying what is wrong. */
export function parseUpstream(text: string): UpstreamDecl {
  const eq = text.indexOf('=');
  if (eq < 0) throw new Error(`upstream '${text}' is not SERVICE:PORT=127.0.0.1:LOCAL_PORT`);
  const [dst, local] = [text.slice(0, eq).trim(), text.slice(eq + 1).trim()];
  const m = /^([^:]+):(\d{1,5})$/.exec(dst);
  const names = m ? m[1]!.split('.') : [];
  if (!m || names.length > 2 || !names.every((n) => NAME.test(n))) throw new Error(`upstream '${text}': '${dst}' is not SERVICE[.NAMESPACE]:PORT`);
  const port = Number(m[2]);
  const lm = /^(?:(127\.0\.0\.1|localhost):)?(\d{1,5})$/.exec(local);
  const listenPort = lm ? Number(lm[2]) : NaN;
  if (port < 1 || port > 65535) throw new Error(`upstream '${text}': port ${m[2]} is not 1-65535`);
  if (!lm || listenPort < 1 || listenPort > 65535) throw new Error(`upstream '${text}': '${local}' is not a local port (127.0.0.1:PORT, 1-65535)`);
  return { authority: `${m[1]}:${port}`, listenPort };
}
