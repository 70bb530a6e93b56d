// Asks a proxy's admin listener how it is: /ready, and its certificate's expiry from /metrics
// (identity_cert_expiration_timestamp_seconds). Used by `mesh check` and the anchor rotation gate.
import http from 'node:http';
import { splitAddress } from '../../api/client.js';

export interface ProxyHealth {
  /** True/false from /ready; undefined with `error` when the admin listener did not answer. */
  ready?: boolean;
  /** The certificate's notAfter in ms since the epoch; undefined when not reported. */
  certNotAfter?: number;
  error?: string;
}

function get(address: string, path: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  const [host, port] = splitAddress(address);
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

const EXPIRY = /^identity_cert_expiration_timestamp_seconds(?:\{[^}]*\})?\s+([0-9.eE+-]+)\s*$/m;

/** The certificate expiry (ms) in a Prometheus text page, if reported and non-zero. */
export function certExpiryFromMetrics(text: string): number | undefined {
  const m = EXPIRY.exec(text);
  const v = m ? Number(m[1]) : NaN;
  return Number.isFinite(v) && v > 0 ? Math.round(v * 1000) : undefined;
}

export async function probeProxy(admin: string | undefined, timeoutMs = 2000): Promise<ProxyHealth> {
  if (!admin) return { error: 'it registered no admin address' };
  try {
    const [ready, metrics] = await Promise.all([get(admin, '/ready', timeoutMs), get(admin, '/metrics', timeoutMs)]);
    return { ready: ready.status === 200, certNotAfter: metrics.status === 200 ? certExpiryFromMetrics(metrics.body) : undefined };
  } catch (err) {
    return { error: `its admin listener ${admin} does not answer (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
  }
}
