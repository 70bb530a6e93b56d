// Rotating the local mesh's identity without a restart. The issuer: a new one under the same anchor,
// loaded by the control plane at once (leaves it signed before stay valid: they chain to the same
// anchor). The trust anchor, in three phases, each waiting for every proxy to renew first:
//   add     the bundle holds the old and the new anchor; proxies get it with their next certificate
//   switch  a new issuer under the new anchor signs from now on (peers trust both anchors)
//   remove  the bundle holds the new anchor only
// Each step checks the new material first and changes files second; a control plane that refuses
// the reload gets the old files back.
import { readFileSync } from 'node:fs';
import type { X509Certificate } from 'node:crypto';
import { createIssuer, createTrustAnchor, DAY, type CertAndKey } from '../../identity/ca.js';
import { bundleCerts, certForKey, identityErrors, validityError, validTo } from '../../identity/chain.js';
import { ControlUnreachable } from '../../api/client.js';
import { writeFileAtomic, writeJsonAtomic } from '../../util/fs.js';
import { MeshError } from '../../util/errors.js';
import { sleep } from '../../util/net.js';
import type { EndpointRecord } from '../../api/types.js';
import { adminClient } from './control.js';
import { clearRotation, identityPaths, rotationState, type RotationState } from './identity.js';
import { probeProxy } from './probe.js';
import type { StateDir } from './state.js';
import type { Phase } from '../../identity/phases.js';

export { PHASES, type Phase } from '../../identity/phases.js';

export interface RotationOptions {
  /** Lifetime of a new anchor or issuer; an issuer never outlives its anchor. */
  lifetimeMs?: number;
  /** switch/remove: how long to wait for every proxy to renew its certificate (0: do not wait). */
  waitMs?: number;
  /** switch/remove: go ahead even though proxies have not renewed (their peers may refuse them). */
  force?: boolean;
  progress?: (msg: string) => void;
}

export interface RotationResult {
  /** What changed, one line each. */
  done: string[];
  /** Whether a running control plane loaded it (false: it loads the files when it starts). */
  reloaded: boolean;
  /** What to do next, if anything. */
  next?: string;
}

/** An admin call to the local control plane; undefined when none is running. */
export async function adminRequest<T>(state: StateDir, method: string, path: string, body?: unknown): Promise<{ status: number; body: T } | undefined> {
  const client = adminClient(state);
  try {
    return await client.request<T>(method, path, body, { bearer: state.adminToken(), timeoutMs: 20_000 });
  } catch (err) {
    if (err instanceof ControlUnreachable) return undefined;
    throw err;
  } finally {
    client.close();
  }
}

/** Asks a running control plane to load the identity files; 'not-running' when none answers. */
async function reload(state: StateDir): Promise<boolean> {
  const r = await adminRequest<{ error?: string }>(state, 'POST', '/v1/identity/reload');
  if (!r) return false;
  if (r.status === 200) return true;
  if (r.status === 404) throw new MeshError('the running control plane cannot reload its identity', "it is older than this CLI: restart it ('mesh uninstall', 'mesh install')");
  throw new MeshError(`the control plane refused the new identity: ${r.body?.error ?? `HTTP ${r.status}`}`, 'the previous identity files were put back; nothing changed');
}

interface FileChange {
  path: string;
  data: string;
  mode: number;
}

/** Writes the files, reloads the control plane, and puts the old contents back if it refuses. */
async function apply(state: StateDir, changes: FileChange[]): Promise<boolean> {
  const before = changes.map((c) => {
    try {
      return { ...c, data: readFileSync(c.path, 'utf8') };
    } catch {
      return { ...c, data: undefined };
    }
  });
  for (const c of changes) writeFileAtomic(c.path, c.data, c.mode);
  try {
    return await reload(state);
  } catch (err) {
    for (const b of before) if (b.data !== undefined) writeFileAtomic(b.path, b.data, b.mode);
    throw err;
  }
}

function readBundle(state: StateDir): { pem: string; certs: X509Certificate[] } {
  const pem = state.readSecret(state.anchorCertPath, 'the trust anchor') + '\n';
  try {
    return { pem, certs: bundleCerts(pem) };
  } catch {
    throw new MeshError(`the trust anchor bundle in ${state.display}/identity cannot be parsed`, 'restore identity/trust-anchor.crt');
  }
}

function signingAnchor(state: StateDir, certs: X509Certificate[], keyPath: string): CertAndKey {
  const keyPem = state.readSecret(keyPath, 'the trust anchor key');
  const cert = certForKey(certs, keyPem);
  if (!cert) throw new MeshError(`the trust anchor key ${keyPath} belongs to no certificate in the bundle`, 'restore identity/trust-anchor.crt and its key');
  const v = validityError(cert, 'the trust anchor', Date.now());
  if (v) throw new MeshError(v, "an expired anchor cannot sign: rotate it with 'mesh identity rotate-anchor'");
  return { certPem: cert.toString(), keyPem };
}

/** A new issuer under `anchor`, never outliving it. */
async function newIssuer(trustDomain: string, anchor: CertAndKey, lifetimeMs: number, done: string[]): Promise<CertAndKey> {
  const left = validTo(bundleCerts(anchor.certPem)[0]!) - Date.now() - 60_000;
  const lifetime = Math.max(60_000, Math.min(lifetimeMs, left));
  if (lifetime < lifetimeMs - DAY) done.push(`the issuer lifetime is cut to ${Math.floor(lifetime / DAY)} days: it must not outlive the trust anchor`);
  return createIssuer(trustDomain, anchor, lifetime);
}

function mustBeUsable(anchorsPem: string, issuer: CertAndKey): void {
  const errors = identityErrors({ anchorsPem, issuerCertPem: issuer.certPem, issuerKeyPem: issuer.keyPem });
  if (errors.length) throw new MeshError(`the new identity would not be usable: ${errors.join('; ')}`, 'nothing was changed');
}

export async function rotateIssuer(state: StateDir, o: RotationOptions = {}): Promise<RotationResult> {
  const cfg = state.config();
  const bundle = readBundle(state);
  const anchor = signingAnchor(state, bundle.certs, state.anchorKeyPath);
  const done: string[] = [];
  const issuer = await newIssuer(cfg.trustDomain, anchor, o.lifetimeMs ?? 365 * DAY, done);
  mustBeUsable(bundle.pem, issuer);
  const reloaded = await apply(state, [
    { path: state.issuerKeyPath, data: issuer.keyPem, mode: 0o600 },
    { path: state.issuerCertPath, data: issuer.certPem, mode: 0o644 },
  ]);
  done.unshift(`new issuer valid until ${new Date(validTo(bundleCerts(issuer.certPem)[0]!)).toISOString()}, signed by the same trust anchor`);
  return { done, reloaded };
}

/** The phase that comes next, given the rotation state. */
export function nextPhase(rot: RotationState | undefined): Phase {
  return !rot ? 'add' : rot.phase === 'add' ? 'switch' : 'remove';
}

export async function rotateAnchor(state: StateDir, phase: Phase | undefined, o: RotationOptions = {}): Promise<RotationResult> {
  const cfg = state.config();
  const rot = rotationState(state);
  const want = nextPhase(rot);
  const p = phase ?? want;
  if (p !== want) {
    throw new MeshError(
      rot ? `the trust anchor rotation is in phase ${rot.phase}; the next phase is ${want}, not ${p}` : `no trust anchor rotation is under way, so phase ${p} cannot run`,
      `run 'mesh identity rotate-anchor --phase ${want}'`,
    );
  }
  const paths = identityPaths(state);
  const done: string[] = [];
  const lifetime = o.lifetimeMs ?? 365 * DAY;

  if (p === 'add') {
    const bundle = readBundle(state);
    const current = readFileSync(state.issuerCertPath, 'utf8');
    const anchor = await createTrustAnchor(cfg.trustDomain, lifetime);
    const pem = bundle.certs.map((c) => c.toString()).join('') + anchor.certPem;
    mustBeUsable(pem, { certPem: current, keyPem: state.readSecret(state.issuerKeyPath, 'the issuer key') });
    writeFileAtomic(paths.nextAnchorKey, anchor.keyPem, 0o600);
    const reloaded = await apply(state, [{ path: state.anchorCertPath, data: pem, mode: 0o644 }]).catch((err) => {
      clearRotation(state);
      throw err;
    });
    writeJsonAtomic(paths.rotation, { phase: 'add', addedAt: new Date().toISOString() } satisfies RotationState);
    done.push(`new trust anchor added to the bundle (valid until ${new Date(validTo(bundleCerts(anchor.certPem)[0]!)).toISOString()}); the old one stays until phase remove`);
    return { done, reloaded, next: nextStep('switch', cfg.certLifetimeMs) };
  }

  // switch and remove: every proxy must hold a certificate issued after the previous phase.
  const since = Date.parse(p === 'switch' ? rot!.addedAt : rot!.switchedAt!);
  await renewalGate(state, since, p, o);

  if (p === 'switch') {
    const bundle = readBundle(state);
    const anchor = signingAnchor(state, bundle.certs, paths.nextAnchorKey);
    const issuer = await newIssuer(cfg.trustDomain, anchor, lifetime, done);
    mustBeUsable(bundle.pem, issuer);
    const oldKey = state.readSecret(state.anchorKeyPath, 'the trust anchor key');
    writeFileAtomic(paths.prevAnchorKey, oldKey, 0o600);
    const reloaded = await apply(state, [
      { path: state.anchorKeyPath, data: anchor.keyPem, mode: 0o600 },
      { path: state.issuerKeyPath, data: issuer.keyPem, mode: 0o600 },
      { path: state.issuerCertPath, data: issuer.certPem, mode: 0o644 },
    ]);
    writeJsonAtomic(paths.rotation, { phase: 'switch', addedAt: rot!.addedAt, switchedAt: new Date().toISOString() } satisfies RotationState);
    done.unshift('a new issuer under the new trust anchor signs every certificate from now on');
    return { done, reloaded, next: nextStep('remove', cfg.certLifetimeMs) };
  }

  const bundle = readBundle(state);
  const anchor = signingAnchor(state, bundle.certs, state.anchorKeyPath);
  const pem = anchor.certPem;
  mustBeUsable(pem, { certPem: readFileSync(state.issuerCertPath, 'utf8'), keyPem: state.readSecret(state.issuerKeyPath, 'the issuer key') });
  const reloaded = await apply(state, [{ path: state.anchorCertPath, data: pem, mode: 0o644 }]);
  clearRotation(state);
  done.push(`old trust anchor removed from the bundle (${bundle.certs.length - 1} removed); the rotation is complete`);
  return { done, reloaded };
}

function nextStep(phase: Phase, certLifetimeMs: number): string {
  return `wait until every proxy has renewed its certificate (about ${describeMs(0.7 * certLifetimeMs)}; 'mesh check' shows them), then run 'mesh identity rotate-anchor --phase ${phase}'`;
}

function describeMs(ms: number): string {
  if (ms < 120_000) return `${Math.ceil(ms / 1000)} s`;
  if (ms < 2 * 3_600_000) return `${Math.ceil(ms / 60_000)} min`;
  return `${Math.ceil(ms / 3_600_000)} h`;
}

export interface Lagging {
  instance: string;
  why: string;
}

/** Proxies whose certificate was issued before `since` (or that cannot say). */
export async function proxiesNotRenewedSince(state: StateDir, since: number): Promise<Lagging[] | undefined> {
  const eps = await adminRequest<EndpointRecord[]>(state, 'GET', '/v1/endpoints');
  if (!eps) return undefined;
  if (eps.status !== 200) throw new MeshError(`the control plane answered ${eps.status} listing proxies`, `see ${state.controlLog}`);
  const id = await adminRequest<{ certLifetimeMs: number }>(state, 'GET', '/v1/identity');
  const lifetime = id?.status === 200 ? id.body.certLifetimeMs : state.config().certLifetimeMs;
  const out: Lagging[] = [];
  await Promise.all(eps.body.map(async (ep) => {
    const h = await probeProxy(ep.admin);
    if (h.error || h.certNotAfter === undefined) return void out.push({ instance: ep.instance, why: h.error ?? 'it reports no certificate' });
    // notAfter = issue time + lifetime, cut to the second, so this errs on the early side: safe.
    if (h.certNotAfter - lifetime < since) out.push({ instance: ep.instance, why: `certificate issued ${new Date(h.certNotAfter - lifetime).toISOString()}` });
  }));
  return out.sort((a, b) => a.instance.localeCompare(b.instance));
}

async function renewalGate(state: StateDir, since: number, phase: Phase, o: RotationOptions): Promise<void> {
  const deadline = Date.now() + (o.waitMs ?? 0);
  for (;;) {
    const lagging = await proxiesNotRenewedSince(state, since);
    if (!lagging) {
      if (o.force) return;
      throw new MeshError('no control plane is answering, so whether every proxy renewed cannot be told', "start it with 'mesh install', or pass --force");
    }
    if (!lagging.length || o.force) return;
    if (Date.now() >= deadline) {
      throw new MeshError(
        `${lagging.length} prox${lagging.length === 1 ? 'y has' : 'ies have'} not renewed since the last phase: ${lagging.map((l) => `${l.instance} (${l.why})`).join(', ')}`,
        `wait for their renewal (--wait 2m waits), restart them, or --force (peers may then refuse them); phase ${phase} did not run`,
      );
    }
    o.progress?.(`waiting for ${lagging.length} prox${lagging.length === 1 ? 'y' : 'ies'} to renew: ${lagging.map((l) => l.instance).join(', ')}`);
    await sleep(Math.min(1000, Math.max(0, deadline - Date.now())));
  }
}
