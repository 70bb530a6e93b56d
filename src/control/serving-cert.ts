// The control plane's own serving certificate is short-lived like a workload's: it is renewed at ~70% of its life
// (as proxies renew theirs, src/proxy/identity.ts) and swapped into the running HTTPS server with setSecureContext,
// so connections already open keep going and new handshakes get the new certificate.
import { certInfo, DAY, type Issuer } from '../identity/ca.js';

export interface ServingTls {
  /** The leaf followed by its chain (the issuer). */
  cert: string;
  key: string;
}

/** Makes a serving certificate signed by issuer (chainPem after the leaf), valid for lifetimeMs. */
export type MakeServingTls = (issuer: Issuer, chainPem: string, lifetimeMs: number) => Promise<ServingTls>;

export const SERVING_RENEW_AT = 0.7;
/** Timers are re-checked against the wall clock at least this often: a suspended machine's timers run late. */
const MAX_SLEEP_MS = 60_000;
/** Certificate times have whole seconds: with a lifetime of a second or two, renew at most this often. */
const MIN_GAP_MS = 1000;

export interface ServingCertOptions {
  make: MakeServingTls;
  /** The current issuer, its certificate and the leaf lifetime: they change when the identity is reloaded. */
  signer(): { issuer: Issuer; chainPem: string; lifetimeMs: number };
  /** Puts a renewed certificate into service. */
  install(tls: ServingTls): void;
  log?: (line: string) => void;
}

/** Keeps the serving certificate renewed; `adopt` takes one made elsewhere (an identity reload) and re-plans. */
export class ServingCertRenewer {
  private timer: NodeJS.Timeout | undefined;
  private validity = { notBefore: 0, notAfter: 0 };
  private stopped = false;
  private renewing = false;

  constructor(private readonly o: ServingCertOptions) {}

  /** The certificate now in service; renewal is planned from its validity. */
  adopt(tls: ServingTls): void {
    const info = certInfo(tls.cert);
    this.validity = { notBefore: info.notBefore.getTime(), notAfter: info.notAfter.getTime() };
    this.plan();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private renewAt(): number {
    const { notBefore, notAfter } = this.validity;
    return notBefore + SERVING_RENEW_AT * (notAfter - notBefore);
  }

  private plan(): void {
    this.arm(this.renewAt() - Date.now());
  }

  private arm(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), Math.min(Math.max(delayMs, 0), MAX_SLEEP_MS));
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    // A renewal in flight plans the next one when it is done.
    if (this.stopped || this.renewing) return;
    if (Date.now() < this.renewAt()) return this.plan();
    const { issuer, chainPem, lifetimeMs } = this.o.signer();
    this.renewing = true;
    let retryInMs: number | undefined;
    try {
      const tls = await this.o.make(issuer, chainPem, lifetimeMs > 0 ? lifetimeMs : DAY);
      // An identity reload while the key was made has put a certificate of the new issuer in service: keep that one.
      if (!this.stopped && this.o.signer().issuer === issuer) {
        this.o.install(tls);
        const info = certInfo(tls.cert);
        this.validity = { notBefore: info.notBefore.getTime(), notAfter: info.notAfter.getTime() };
        this.o.log?.(`control: serving certificate renewed, valid until ${info.notAfter.toISOString()}`);
      }
    } catch (err) {
      // Keep serving the current certificate; try again, more often as its expiry nears.
      const left = this.validity.notAfter - Date.now();
      this.o.log?.(`control: renewing the serving certificate failed (${(err as Error).message}); ${Math.round(left / 1000)} s left`);
      retryInMs = Math.max(500, Math.min(5000, left / 10));
    } finally {
      this.renewing = false;
    }
    if (retryInMs !== undefined && Date.now() >= this.renewAt()) this.arm(retryInMs);
    else this.arm(Math.max(MIN_GAP_MS, this.renewAt() - Date.now()));
  }
}
