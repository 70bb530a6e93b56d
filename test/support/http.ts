// The tests' one HTTP(S) client: a bounded request to a local server, the whole body read.
import http from 'node:http';
import https from 'node:https';
import type tls from 'node:tls';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface CallOptions {
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  /** Sent as is; `json` instead sends JSON with its content-type. */
  body?: string | Buffer;
  json?: unknown;
  bearer?: string;
  /** No pooling unless an agent is given. */
  agent?: http.Agent;
  timeoutMs?: number;
  /** For https: ca, cert, key, servername, rejectUnauthorized, checkServerIdentity... */
  tls?: tls.ConnectionOptions;
}

/**
 * One request to `scheme://host:port` followed by the request target exactly as written (never normalised: tests
 * send dot-segments, encodings and absolute forms on purpose); resolves with any status, rejects on a transport error
 * or after timeoutMs.
 */
export function call(url: string, o: CallOptions = {}): Promise<Reply> {
  const m = /^(https?):\/\/(\[[^\]]+\]|[^/:]+):(\d+)(.*)$/s.exec(url);
  if (!m) throw new Error(`not scheme://host:port/target: ${url}`);
  const secure = m[1] === 'https';
  const u = { hostname: m[2]!.replace(/^\[|\]$/g, ''), port: m[3]!, target: m[4] || '/' };
  const payload = o.json !== undefined ? JSON.stringify(o.json) : o.body;
  const headers: http.OutgoingHttpHeaders = {
    ...(o.json !== undefined ? { 'content-type': 'application/json' } : {}),
    ...(o.bearer ? { authorization: `Bearer ${o.bearer}` } : {}),
    ...o.headers,
  };
  const opts = { ...(secure ? o.tls : {}), host: u.hostname, port: Number(u.port), path: u.target, method: o.method ?? 'GET', headers, agent: o.agent ?? false } as https.RequestOptions;
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).request(opts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(o.timeoutMs ?? 10_000, () => req.destroy(new Error(`${opts.method} ${url} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

// Tests assert on API bodies field by field.
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** `call`, with the body parsed as JSON ({} when empty). */
export async function callJson<T = Obj>(url: string, o: CallOptions = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: T }> {
  const r = await call(url, o);
  let body: T;
  try {
    body = (r.body ? JSON.parse(r.body) : {}) as T;
  } catch {
    throw new Error(`${o.method ?? 'GET'} ${url} answered ${r.status} with a body that is not JSON: ${r.body.slice(0, 200)}`);
  }
  return { status: r.status, headers: r.headers, body };
}

/** `call` to host:port over plain HTTP. */
export function get(address: string, path = '/', o: CallOptions = {}): Promise<Reply> {
  return call(`http://${address}${path}`, o);
}

/** The stable code (src/proxy/errors.ts) of an answer the proxy made itself, read from its error header; undefined for the app's answers. */
export function proxyError(headers: Record<string, string | string[] | undefined>): string | undefined {
  const v = headers['mesh-proxy-error'];
  if (typeof v !== 'string') return undefined;
  const colon = v.indexOf(':');
  return colon < 0 ? v : v.slice(0, colon);
}
