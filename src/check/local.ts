// What `mesh check` asks of a local mesh, as data: categories of checkers over a MeshView (the real
// one reads the state dir, the control plane and the proxies' admin listeners; tests hand in fakes).
import type { X509Certificate } from 'node:crypto';
import { bundleCerts, keyMatches, signerIn, validFrom, validTo } from '../identity/chain.js';
import { versionAtLeast } from '../control/propagation.js';
import type { ProxyHealth } from '../platform/local/probe.js';
import type { Category, Checker } from './runner.js';

export interface ProxyView {
  instance: string;
  namespace: string;
  service: string;
  role?: string;
  admin?: string;
  configVersion?: string;
  /** ISO time of the last heartbeat the control plane saw. */
  lastSeen?: string;
}

export interface ControlProcessView {
  pid: number;
  alive: boolean;
  startedAt?: string;
  /** When it stopped, if it recorded that; else when it last wrote its log. */
  stoppedAt?: string;
  lastLogAt?: string;
  log: string;
}

export interface MeshView {
  now(): number;
  cliVersion: string;
  /** Where the state lives, for messages. */
  where: string;
  installed(): boolean;
  controlProcess(): ControlProcessView | undefined;
  /** GET /v1/version; throws with a reason when the control plane does not answer. */
  serverVersion(): Promise<string>;
  /** Admin GET /v1/endpoints; throws when refused. */
  proxies(): Promise<ProxyView[]>;
  /** The version of the snapshot the control plane pushes now. */
  snapshotVersion(): Promise<string>;
  identityFiles(): { anchorsPem: string; issuerCertPem: string; issuerKeyPem: string };
  /** What the running control plane signs with (admin GET /v1/identity). */
  servedIdentity(): Promise<{ trustAnchors: string; issuer: string; certLifetimeMs: number }>;
  rotation(): { phase: string; addedAt: string; switchedAt?: string } | undefined;
  /** Instances of the local workloads (and ingresses) that run and so should have a proxy registered. */
  runningWorkloads(): string[];
  /** Workloads whose app exited or is waiting to restart, one line each (instance: what happened). */
  stoppedApps?(): string[];
  probe(admin: string | undefined): Promise<ProxyHealth>;
}

/** Heartbeats come every 2 s; one older than this means the proxy lost the control plane. */
export const HEARTBEAT_STALE_MS = 10_000;
/** Anchors and issuers should have this much life left (Linkerd's 60 days). */
export const MIN_CA_LIFE_MS = 60 * 86_400_000;
/** Workload certificates are renewed at 70% of their life; with under 15% left renewal is failing. */
export const LEAF_OVERDUE_SHARE = 0.15;

type ProxyState = ProxyView & { health: ProxyHealth };

export class LocalCheckContext {
  private dp?: { at: number; value: Promise<ProxyState[]> };
  constructor(readonly view: MeshView) {}

  /** Registered proxies with their admin answers; asked once per pass (retries ask again). */
  dataPlane(): Promise<ProxyState[]> {
    if (!this.dp || Date.now() - this.dp.at > 500) {
      const value = this.view.proxies().then((ps) => Promise.all(ps.map(async (p) => ({ ...p, health: await this.view.probe(p.admin) }))));
      this.dp = { at: Date.now(), value };
    }
    return this.dp.value;
  }
}

const days = (ms: number) => Math.floor(ms / 86_400_000);
const iso = (ms: number) => new Date(ms).toISOString();

function fail(problems: string[]): void {
  if (problems.length) throw new Error(problems.join('\n'));
}

function anchors(ctx: LocalCheckContext): X509Certificate[] {
  const certs = bundleCerts(ctx.view.identityFiles().anchorsPem);
  if (!certs.length) throw new Error('the trust anchor bundle holds no certificate');
  return certs;
}

function issuer(ctx: LocalCheckContext): X509Certificate {
  const [c] = bundleCerts(ctx.view.identityFiles().issuerCertPem);
  if (!c) throw new Error('the issuer certificate file holds no certificate');
  return c;
}

function validity(certs: X509Certificate[], what: (i: number) => string, now: number): string[] {
  const out: string[] = [];
  certs.forEach((c, i) => {
    if (now < validFrom(c)) out.push(`${what(i)} is not valid before ${iso(validFrom(c))}`);
    else if (now > validTo(c)) out.push(`${what(i)} expired on ${iso(validTo(c))}`);
  });
  return out;
}

function lifeLeft(certs: X509Certificate[], what: (i: number) => string, now: number): string[] {
  return certs
    .map((c, i) => ({ c, i, left: validTo(c) - now }))
    .filter((x) => x.left < MIN_CA_LIFE_MS)
    .map((x) => (x.left <= 0 ? `${what(x.i)} expired on ${iso(validTo(x.c))}` : `${what(x.i)} expires on ${iso(validTo(x.c))}, in ${days(x.left)} days`));
}

const anchorName = (n: number) => (i: number) => (n === 1 ? 'the trust anchor' : `trust anchor ${i + 1} of ${n}`);

const proxyLines = (ps: ProxyState[], why: (p: ProxyState) => string | undefined): string[] =>
  ps.flatMap((p) => {
    const w = why(p);
    return w ? [`${p.instance} (${p.namespace}/${p.service}): ${w}`] : [];
  });

const existence: Checker<LocalCheckContext>[] = [
  {
    description: 'mesh is installed in the state directory',
    hint: 'mesh-installed',
    fatal: true,
    check: ({ view }) => {
      if (!view.installed()) throw new Error(`no mesh is installed in ${view.where}: run 'mesh install'`);
    },
  },
  {
    description: 'control plane process is running',
    hint: 'control-plane-running',
    fatal: true,
    check: ({ view }) => {
      const p = view.controlProcess();
      if (!p) throw new Error(`no control plane has been started for ${view.where}: run 'mesh install'`);
      if (p.alive) return;
      const when = p.stoppedAt ? `stopped at ${p.stoppedAt}` : `died${p.lastLogAt ? ` (its last log line was written at ${p.lastLogAt})` : ''}`;
      throw new Error(`the control plane (pid ${p.pid}${p.startedAt ? `, started at ${p.startedAt}` : ''}) ${when}; its log is ${p.log}: 'mesh install' restarts it`);
    },
  },
  {
    description: 'control plane API answers',
    hint: 'control-plane-api',
    fatal: true,
    retry: true,
    check: async ({ view }) => void (await view.serverVersion()),
  },
  {
    description: 'control plane accepts the admin credential',
    hint: 'control-plane-admin',
    fatal: true,
    check: async ({ view }) => void (await view.proxies()),
  },
];

const version: Checker<LocalCheckContext>[] = [
  {
    description: 'control plane and CLI versions match',
    hint: 'version-match',
    warning: true,
    check: async ({ view }) => {
      const server = await view.serverVersion();
      if (server !== view.cliVersion) throw new Error(`the control plane runs ${server}, the CLI is ${view.cliVersion}: restart the control plane with this CLI ('mesh uninstall', 'mesh install')`);
    },
  },
];

const identity: Checker<LocalCheckContext>[] = [
  {
    description: 'trust anchors are within their validity period',
    hint: 'identity-anchor-valid',
    check: (ctx) => {
      const a = anchors(ctx);
      fail(validity(a, anchorName(a.length), ctx.view.now()));
    },
  },
  {
    description: 'trust anchors are valid for at least 60 days',
    hint: 'identity-anchor-expiring',
    warning: true,
    check: (ctx) => {
      const a = anchors(ctx);
      fail(lifeLeft(a, anchorName(a.length), ctx.view.now()));
    },
  },
  {
    description: 'issuer certificate is within its validity period',
    hint: 'identity-issuer-valid',
    check: (ctx) => fail(validity([issuer(ctx)], () => 'the issuer certificate', ctx.view.now())),
  },
  {
    description: 'issuer certificate is valid for at least 60 days',
    hint: 'identity-issuer-expiring',
    warning: true,
    check: (ctx) => fail(lifeLeft([issuer(ctx)], () => 'the issuer certificate', ctx.view.now())),
  },
  {
    description: 'issuer certificate is issued by the trust anchor',
    hint: 'identity-issuer-signed',
    check: (ctx) => {
      const iss = issuer(ctx);
      const problems: string[] = [];
      if (!iss.ca) problems.push('the issuer certificate is not a CA certificate');
      if (!signerIn(iss, anchors(ctx))) problems.push("the issuer is not signed by any trust anchor in the bundle: rotate it with 'mesh identity rotate-issuer'");
      if (!keyMatches(iss, ctx.view.identityFiles().issuerKeyPem)) problems.push('the issuer key does not belong to the issuer certificate');
      fail(problems);
    },
  },
  {
    description: 'control plane signs with the current issuer and trust anchors',
    hint: 'identity-loaded',
    retry: true,
    check: async (ctx) => {
      const served = await ctx.view.servedIdentity();
      const files = ctx.view.identityFiles();
      const fp = (pem: string) => bundleCerts(pem).map((c) => c.fingerprint256).sort().join(',');
      const problems: string[] = [];
      if (fp(served.issuer) !== fp(files.issuerCertPem)) problems.push('the control plane signs with another issuer than the one in the state directory');
      if (fp(served.trustAnchors) !== fp(files.anchorsPem)) problems.push('the control plane hands out other trust anchors than the bundle in the state directory');
      if (problems.length) problems.push("run 'mesh identity reload' to load the files");
      fail(problems);
    },
  },
  {
    description: 'no trust anchor rotation is left half done',
    hint: 'identity-rotation',
    warning: true,
    check: ({ view }) => {
      const r = view.rotation();
      if (!r) return;
      const next = r.phase === 'add' ? 'switch' : 'remove';
      throw new Error(`phase ${r.phase} ran at ${r.phase === 'add' ? r.addedAt : r.switchedAt}: once every proxy has renewed, run 'mesh identity rotate-anchor --phase ${next}'`);
    },
  },
];

const dataPlane: Checker<LocalCheckContext>[] = [
  {
    description: "workloads' apps are running",
    hint: 'data-plane-apps',
    warning: true,
    check: ({ view }) => fail(view.stoppedApps?.() ?? []),
  },
  {
    description: 'data plane proxies are connected to the control plane',
    hint: 'data-plane-connected',
    retry: true,
    check: async (ctx) => {
      const ps = await ctx.view.proxies();
      const now = ctx.view.now();
      const registered = new Set(ps.map((p) => p.instance));
      const problems = ctx.view.runningWorkloads().filter((i) => !registered.has(i)).sort().map((i) => `${i}: runs but is not registered with the control plane`);
      problems.push(...ps.flatMap((p) => {
        const seen = p.lastSeen ? Date.parse(p.lastSeen) : NaN;
        if (Number.isNaN(seen)) return [`${p.instance} (${p.namespace}/${p.service}): no heartbeat since the control plane started`];
        return now - seen > HEARTBEAT_STALE_MS ? [`${p.instance} (${p.namespace}/${p.service}): last heartbeat ${Math.round((now - seen) / 1000)} s ago`] : [];
      }));
      fail(problems);
    },
  },
  {
    description: 'data plane proxies are ready',
    hint: 'data-plane-ready',
    retry: true,
    check: async (ctx) => fail(proxyLines(await ctx.dataPlane(), (p) => p.health.error ?? (p.health.ready ? undefined : 'its admin /ready answers not ready'))),
  },
  {
    description: 'data plane proxies have valid certificates',
    hint: 'data-plane-certificates',
    check: async (ctx) => {
      const now = ctx.view.now();
      fail(proxyLines(await ctx.dataPlane(), (p) => {
        if (p.health.error) return p.health.error;
        if (p.health.certNotAfter === undefined) return 'it reports no certificate (identity_cert_expiration_timestamp_seconds)';
        return p.health.certNotAfter <= now ? `its certificate expired on ${iso(p.health.certNotAfter)}` : undefined;
      }));
    },
  },
  {
    description: 'data plane proxies renew their certificates in time',
    hint: 'data-plane-renewal',
    warning: true,
    check: async (ctx) => {
      const now = ctx.view.now();
      const lifetime = (await ctx.view.servedIdentity()).certLifetimeMs;
      fail(proxyLines(await ctx.dataPlane(), (p) => {
        const na = p.health.certNotAfter;
        if (na === undefined || na <= now) return undefined;
        return na - now < LEAF_OVERDUE_SHARE * lifetime ? `its certificate expires on ${iso(na)} and has not been renewed (renewal is due at 70% of its life)` : undefined;
      }));
    },
  },
  {
    description: 'data plane proxies have the current config',
    hint: 'data-plane-config',
    retry: true,
    check: async (ctx) => {
      const want = await ctx.view.snapshotVersion();
      fail(proxyLines(await ctx.dataPlane(), (p) => (versionAtLeast(p.configVersion, want) ? undefined : `it runs config ${p.configVersion ?? '(none)'}, the control plane's is ${want}`)));
    },
  },
];

export const LOCAL_CATEGORIES: Category<LocalCheckContext>[] = [
  { name: 'mesh-control-plane', checkers: existence },
  { name: 'mesh-version', checkers: version },
  { name: 'mesh-identity', checkers: identity },
  { name: 'mesh-data-plane', checkers: dataPlane },
];
