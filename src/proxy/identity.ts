// The workload's certificate: made from a key that never leaves this process (and its cache file),
// obtained from the control plane, renewed at ~70% of its life, cached for restarts.
import { EventEmitter } from 'node:events';
import tls, { type SecureContext } from 'node:tls';
import { certInfo, generateKey, type KeyPair } from '../identity/keys.js';
import { buildCsr } from '../identity/der.js';
import { formatIdentity, type Identity } from '../identity/spiffe.js';
import { readJson, writeJsonAtomic } from '../util/fs.js';
import { MeshError } from '../util/errors.js';
import { ControlUnreachable, type ControlClient } from '../api/client.js';
import type { CertificateRequest, CertificateResponse, ErrorBody } from '../api/types.js';
import { isoTime } from '../util/iso-time.js';

export interface WorkloadCert {
  certPem: string;
  chainPem: string;
  keyPem: string;
  trustAnchorsPem: string;
  notBefore: number;
  notAfter: number;
}

type CertResponse = Partial<CertificateResponse & ErrorBody>;

export const RENEW_AT = 0.7;

export class IdentityManager extends EventEmitter {
  current: WorkloadCert | null = null;
  secureContext: SecureContext | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** The next certificate's key, made right after the last renewal: a loaded machine can take seconds for one. */
  private spareKey: Promise<KeyPair> | undefined;
  readonly uri: string;

  constructor(
    readonly identity: Identity,
    private readonly client: ControlClient,
    private readonly joinToken: string | (() => string | undefined) | undefined,
    private readonly cacheFile: string | undefined,
    private readonly log: (msg: string) => void = () => {},
  ) {
    super();
    this.uri = formatIdentity(identity);
  }

  /** Uses a cached certificate that is still valid, else asks the control plane for one. */
  async init(): Promise<void> {
    const cached = this.cacheFile ? safeRead(this.cacheFile) : undefined;
    // A cached certificate from before a trust-anchor change is renewed first; the cache is the
    // fallback only while the control plane is away.
    if (cached && cached.notAfter > Date.now() + 30_000 && !sameBundle(cached.trustAnchorsPem, this.client.trustAnchorsPem)) {
      try {
        await this.renew();
        this.schedule();
        return;
      } catch (err) {
        if (!(err instanceof ControlUnreachable)) throw err;
      }
    }
    if (cached && cached.notAfter > Date.now() + 30_000) {
      this.install(cached);
      this.log(`identity ${this.uri}: using cached certificate valid until ${isoTime(cached.notAfter)}`);
      // Renew promptly if the cached one is past its renewal point, without blocking start.
      this.schedule();
      return;
    }
    try {
      await this.renew();
    } catch (err) {
      if (err instanceof ControlUnreachable) {
        throw new MeshError(`cannot get a certificate: ${err.message}`, "start the control plane with 'mesh install'");
      }
      throw err;
    }
    this.schedule();
  }

  /** Server options for the inbound listener, current certificate. */
  serverOptions(): tls.SecureContextOptions {
    const c = this.current!;
    return { cert: c.certPem + c.chainPem, key: c.keyPem, ca: c.trustAnchorsPem, minVersion: 'TLSv1.3' };
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /**
   * Renews ahead of schedule (the control plane's trust anchors or issuer changed), after a short
   * random delay so a whole mesh does not ask in the same instant.
   */
  renewSoon(maxDelayMs = 1000): void {
    if (this.stopped || !this.current) return;
    this.arm(Math.random() * maxDelayMs, true);
  }

  async renew(): Promise<void> {
    const kp = await (this.spareKey ?? generateKey());
    this.spareKey = undefined;
    const csr = buildCsr(kp.keyPem, this.uri);
    const { status, body } = await this.client.request<CertResponse>('POST', '/v1/certificates', {
      namespace: this.identity.namespace,
      serviceAccount: this.identity.serviceAccount,
      csr,
    } satisfies CertificateRequest, { bearer: typeof this.joinToken === 'function' ? this.joinToken() : this.joinToken });
    if (status !== 200 || !body?.certificate) {
      throw new MeshError(`control plane refused a certificate for ${this.uri}: ${body?.error ?? `HTTP ${status}`}`, 'check that the join credential belongs to this mesh');
    }
    const info = certInfo(body.certificate);
    const cert: WorkloadCert = {
      certPem: body.certificate,
      chainPem: (body.chain ?? []).join(''),
      keyPem: kp.keyPem,
      trustAnchorsPem: body.trustAnchors ?? this.current?.trustAnchorsPem ?? '',
      notBefore: info.notBefore.getTime(),
      notAfter: info.notAfter.getTime(),
    };
    this.install(cert);
    if (this.cacheFile) writeJsonAtomic(this.cacheFile, cert, 0o600);
    this.log(`identity ${this.uri}: certificate valid until ${isoTime(info.notAfter.getTime())}`);
    this.emit('rotated', cert);
    if (!this.stopped) (this.spareKey = generateKey()).catch(() => (this.spareKey = undefined));
  }

  private install(cert: WorkloadCert): void {
    this.current = cert;
    this.secureContext = tls.createSecureContext({
      cert: cert.certPem + cert.chainPem,
      key: cert.keyPem,
      ca: cert.trustAnchorsPem,
      minVersion: 'TLSv1.3',
    });
  }

  private schedule(): void {
    if (this.stopped || !this.current) return;
    const { notBefore, notAfter } = this.current;
    const at = notBefore + RENEW_AT * (notAfter - notBefore);
    this.arm(Math.max(0, at - Date.now()));
  }

  private arm(delay: number, now = false): void {
    clearTimeout(this.timer);
    // Timers past 2^31 ms fire at once; long lifetimes re-arm in steps.
    this.timer = setTimeout(() => void this.tick(now), Math.min(delay, 2 ** 30));
    this.timer.unref();
  }

  private async tick(now = false): Promise<void> {
    if (this.stopped || !this.current) return;
    const { notBefore, notAfter } = this.current;
    if (!now && Date.now() < notBefore + RENEW_AT * (notAfter - notBefore)) return this.schedule();
    try {
      await this.renew();
      this.schedule();
    } catch (err) {
      // Keep serving on the current certificate; retry more often as expiry nears.
      const left = notAfter - Date.now();
      this.log(`identity ${this.uri}: renewal failed (${(err as Error).message}); ${Math.round(left / 1000)} s left`);
      this.arm(Math.max(500, Math.min(5000, left / 10)));
    }
  }
}

function safeRead(file: string): WorkloadCert | undefined {
  try {
    const c = readJson<WorkloadCert>(file, 'cached certificate');
    return c && typeof c.certPem === 'string' && typeof c.keyPem === 'string' ? c : undefined;
  } catch {
    return undefined;
  }
}

function sameBundle(a: string, b: string): boolean {
  const norm = (s: string) => s.replace(/\s+/g, '');
  return norm(a) === norm(b);
}
