// The one client of the control plane's API, for proxies and the CLI: HTTPS, verifying the control
// plane's SPIFFE identity, with the proxy's own certificate once it has one. HTTP/1.1 is the proxy's
// own codec (proxy/wire/h1-client.ts) over tls.connect, so a sidecar never loads node:http(s) (issue 14).
import net from 'node:net';
import tls, { type SecureContext } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { verifyPeer, formatIdentity, PeerIdentityError } from '../identity/spiffe.js';
import { Pool, type UpstreamRequest, type UpstreamResponse } from '../proxy/wire/h1-client.js';

/** The identity the control plane serves with (and that its clients verify). */
export const CONTROL_IDENTITY = (trustDomain: string): string =>
  formatIdentity({ trustDomain, namespace: 'mesh-system', serviceAccount: 'mesh-control' });

export interface ControlResponse<T> {
  status: number;
  body: T;
}

export class ControlUnreachable extends Error {}

/** Pooled connections to the control plane (a watch, a tap, renewals, reports at once; its API answers small). */
const MAX_IDLE = 4;
const IDLE_MS = 60_000;
/** A response body larger than this is not the control plane's: the call fails. */
const MAX_BODY = 64 * 1024 * 1024;
const SERVERNAME = 'mesh-control.mesh-system.mesh.local';
const TLS_ERROR = /^(ERR_TLS|ERR_SSL|UNABLE_|CERT_|DEPTH_ZERO|SELF_SIGNED)/;

export class ControlClient {
  /** Keep-alive connections opened with the workload's certificate (`pooledContext`). */
  private pool: Pool | null = null;
  private pooledContext: SecureContext | undefined;
  /** Without a certificate, no pooling: a pooled anonymous connection must not serve later calls. */
  private readonly bootstrap: Pool;
  private readonly bootstrapContext: SecureContext;
  private readonly controlIdentity: string;
  private readonly host: string;
  private readonly port: number;
  private readonly hostHeader: string;

  constructor(
    readonly address: string,
    readonly trustAnchorsPem: string,
    private readonly trustDomain: string,
    /** The workload's current certificate, when it has one. */
    private readonly identityContext: () => SecureContext | undefined = () => undefined,
  ) {
    this.bootstrapContext = tls.createSecureContext({ ca: trustAnchorsPem, minVersion: 'TLSv1.3' });
    this.controlIdentity = CONTROL_IDENTITY(trustDomain);
    [this.host, this.port] = splitAddress(address);
    this.hostHeader = `${net.isIPv6(this.host) ? `[${this.host}]` : this.host}:${this.port}`;
    this.bootstrap = this.newPool(this.bootstrapContext, 0);
  }

  request<T>(method: string, path: string, body?: unknown, opts: { bearer?: string; timeoutMs?: number } = {}): Promise<ControlResponse<T>> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const ctx = this.identityContext();
    if (ctx && ctx !== this.pooledContext) this.repool(ctx);
    const pool = ctx ? this.pool! : this.bootstrap;
    const headers = ['host', this.hostHeader, 'accept', 'application/json', 'connection', ctx ? 'keep-alive' : 'close'];
    if (payload) headers.push('content-type', 'application/json', 'content-length', String(payload.length));
    if (opts.bearer) headers.push('authorization', `Bearer ${opts.bearer}`);
    const timeout = opts.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const up = pool.request({ host: this.host, port: this.port, method, path, headers });
      const sock = up.conn!.sock;
      // An idle pooled connection must not keep a CLI or a stopping proxy alive (as an https.Agent's do not).
      sock.ref();
      let failed: Error | null = null;
      const fail = (err: Error) => {
        failed ??= err;
        up.destroy(err);
      };
      const onTimeout = () => fail(new ControlUnreachable(`control plane at ${this.address} did not answer within ${timeout} ms`));
      const settle = () => {
        sock.setTimeout(0);
        sock.removeListener('timeout', onTimeout);
      };
      // Silence this long, from the connection's start or the last byte, fails the call.
      sock.setTimeout(timeout);
      sock.on('timeout', onTimeout);
      up.on('response', (res: UpstreamResponse) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_BODY) fail(new Error(`the control plane at ${this.address} answered ${path} with more than ${MAX_BODY} bytes`));
          else chunks.push(c);
        });
        res.on('end', () => {
          settle();
          sock.unref();
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = undefined;
          if (text) {
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = { error: text };
            }
          }
          resolve({ status: res.statusCode, body: parsed as T });
        });
        res.on('aborted', () => {
          settle();
          reject(failed ?? new ControlUnreachable(`control plane at ${this.address} closed the connection mid-answer`));
        });
      });
      up.on('error', (err: NodeJS.ErrnoException) => {
        settle();
        if (err instanceof ControlUnreachable) reject(err);
        else if (err.code === 'ECONNREFUSED' || err.code === 'ECONNRESET') reject(new ControlUnreachable(`control plane at ${this.address} is not reachable (${err.code})`));
        else if (TLS_ERROR.test(err.code ?? '') || err instanceof PeerIdentityError) {
          reject(new ControlUnreachable(`what answers at ${this.address} is not this mesh's control plane (${err.code ?? err.message})`));
        }
        else reject(err);
      });
      up.end(payload);
    });
  }

  close(): void {
    this.pool?.destroy();
    this.bootstrap.destroy();
  }

  /**
   * A new certificate gets new connections: the control plane judges a connection's identity at its
   * handshake, so one opened while the old certificate had expired would be refused for its life.
   * Calls in flight (a watch) finish on the old pool, whose connections then close.
   */
  private repool(ctx: SecureContext): void {
    this.pool?.retire();
    this.pool = this.newPool(ctx, MAX_IDLE);
    this.pooledContext = ctx;
  }

  private newPool(secureContext: SecureContext, maxIdle: number): Pool {
    const checkServerIdentity = (_h: string, cert: tls.PeerCertificate): Error | undefined => {
      try {
        const id = verifyPeer(new X509Certificate(cert.raw), this.trustDomain);
        return formatIdentity(id) === this.controlIdentity ? undefined : new PeerIdentityError(`control plane presented ${formatIdentity(id)}`);
      } catch (err) {
        return err as Error;
      }
    };
    // Node 20's tls.connect takes `onread` as net.connect does (its types do not say so yet).
    const connect = (o: UpstreamRequest, onread: net.OnReadOpts) =>
      tls.connect({ host: o.host, port: o.port, secureContext, servername: SERVERNAME, checkServerIdentity, onread } as tls.ConnectionOptions);
    return new Pool({ idleMs: IDLE_MS, maxIdle, connect });
  }
}

export function splitAddress(addr: string): [string, number] {
  const i = addr.lastIndexOf(':');
  return [addr.slice(0, i) || '127.0.0.1', Number(addr.slice(i + 1))];
}
