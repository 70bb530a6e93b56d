// The one client of the control plane's API, for proxies and the CLI: HTTPS, verifying the control
// plane's SPIFFE identity, with the proxy's own certificate once it has one.
import https from 'node:https';
import tls, { type SecureContext } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { verifyPeer, formatIdentity, PeerIdentityError } from '../identity/spiffe.js';

/** The identity the control plane serves with (and that its clients verify). */
export const CONTROL_IDENTITY = (trustDomain: string): string =>
  formatIdentity({ trustDomain, namespace: 'mesh-system', serviceAccount: 'mesh-control' });

export interface ControlResponse<T> {
  status: number;
  body: T;
}

export class ControlUnreachable extends Error {}

export class ControlClient {
  private agent = newAgent();
  /** The certificate the pooled connections were opened with. */
  private agentContext: SecureContext | undefined;
  private readonly bootstrapContext: SecureContext;
  private readonly controlIdentity: string;

  constructor(
    readonly address: string,
    readonly trustAnchorsPem: string,
    private readonly trustDomain: string,
    /** The workload's current certificate, when it has one. */
    private readonly identityContext: () => SecureContext | undefined = () => undefined,
  ) {
    this.bootstrapContext = tls.createSecureContext({ ca: trustAnchorsPem, minVersion: 'TLSv1.3' });
    this.controlIdentity = CONTROL_IDENTITY(trustDomain);
  }

  request<T>(method: string, path: string, body?: unknown, opts: { bearer?: string; timeoutMs?: number } = {}): Promise<ControlResponse<T>> {
    const [host, port] = splitAddress(this.address);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const ctx = this.identityContext();
    if (ctx && ctx !== this.agentContext) this.repool(ctx);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    if (opts.bearer) headers.authorization = `Bearer ${opts.bearer}`;
    return new Promise((resolve, reject) => {
      const req = https.request({
        host,
        port,
        method,
        path,
        headers,
        // Without a certificate, no pooling: a pooled anonymous connection must not serve later calls.
        agent: ctx ? this.agent : false,
        secureContext: ctx ?? this.bootstrapContext,
        servername: 'mesh-control.mesh-system.mesh.local',
        checkServerIdentity: (_h: string, cert: tls.PeerCertificate) => {
          try {
            const id = verifyPeer(new X509Certificate(cert.raw), this.trustDomain);
            return formatIdentity(id) === this.controlIdentity ? undefined : new PeerIdentityError(`control plane presented ${formatIdentity(id)}`);
          } catch (err) {
            return err as Error;
          }
        },
      } as https.RequestOptions);
      const timeout = opts.timeoutMs ?? 10_000;
      req.setTimeout(timeout, () => req.destroy(new ControlUnreachable(`control plane at ${this.address} did not answer within ${timeout} ms`)));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = undefined;
          if (text) {
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = { error: text };
            }
          }
          resolve({ status: res.statusCode ?? 0, body: parsed as T });
        });
        res.on('error', reject);
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err instanceof ControlUnreachable) reject(err);
        else if (err.code === 'ECONNREFUSED' || err.code === 'ECONNRESET') reject(new ControlUnreachable(`control plane at ${this.address} is not reachable (${err.code})`));
        else if (/^(ERR_TLS|ERR_SSL|UNABLE_|CERT_|DEPTH_ZERO|SELF_SIGNED)/.test(err.code ?? '') || err instanceof PeerIdentityError) {
          reject(new ControlUnreachable(`what answers at ${this.address} is not this mesh's control plane (${err.code ?? err.message})`));
        }
        else reject(err);
      });
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }

  /**
   * A new certificate gets new connections: the control plane judges a connection's identity at its
   * handshake, so one opened while the old certificate had expired would be refused for its life.
   * Calls in flight (a watch) finish on the old pool, whose connections then close.
   */
  private repool(ctx: SecureContext): void {
    const old = this.agent;
    old.keepSocketAlive = () => false;
    for (const list of Object.values(old.freeSockets)) for (const s of list ?? []) s.destroy();
    this.agent = newAgent();
    this.agentContext = ctx;
  }
}

const newAgent = () => new https.Agent({ keepAlive: true, maxSockets: 4, timeout: 60_000 });

export function splitAddress(addr: string): [string, number] {
  const i = addr.lastIndexOf(':');
  return [addr.slice(0, i) || '127.0.0.1', Number(addr.slice(i + 1))];
}
