// The local platform's identity files: the trust anchor bundle, the issuer, and the state of a
// trust anchor rotation. The control plane loads them at start and on POST /v1/identity/reload.
//
// identity/trust-anchor.crt       the bundle every party trusts (one anchor, two during a rotation)
// identity/trust-anchor.key       the key of the anchor that signs issuers
// identity/trust-anchor.next.key  during rotation phase `add`: the new anchor's key
// identity/trust-anchor.prev.key  during rotation phase `switch`: the old anchor's key
// identity/issuer.crt, issuer.key the issuer that signs workload certificates
// identity/rotation.json          the rotation phase, while one is in progress
import { existsSync, rmSync } from 'node:fs';
import { Issuer } from '../../identity/ca.js';
import { identityErrors } from '../../identity/chain.js';
import { readJson } from '../../util/fs.js';
import { MeshError } from '../../util/errors.js';
import type { StateDir } from './state.js';

export interface LoadedIdentity {
  anchorsPem: string;
  issuerCertPem: string;
  issuerKeyPem: string;
  issuer: Issuer;
  certLifetimeMs: number;
}

export type RotationPhase = 'add' | 'switch';

export interface RotationState {
  phase: RotationPhase;
  /** When the new anchor joined the bundle the control plane hands out (ISO time). */
  addedAt: string;
  /** When the control plane started issuing from the new anchor's issuer. */
  switchedAt?: string;
}

export const identityPaths = (state: StateDir) => ({
  nextAnchorKey: state.path('identity', 'trust-anchor.next.key'),
  prevAnchorKey: state.path('identity', 'trust-anchor.prev.key'),
  rotation: state.path('identity', 'rotation.json'),
});

/**
 * Reads the identity files. `strict` (a reload) also refuses material that would sign certificates
 * nobody trusts: an issuer not signed by an anchor in the bundle, a key that does not match, or
 * anything outside its validity.
 */
export function loadIdentity(state: StateDir, strict: boolean): LoadedIdentity {
  const cfg = state.config();
  const anchorsPem = state.readSecret(state.anchorCertPath, 'the trust anchor') + '\n';
  const issuerCertPem = state.readSecret(state.issuerCertPath, 'the issuer certificate') + '\n';
  const issuerKeyPem = state.readSecret(state.issuerKeyPath, 'the issuer key');
  if (strict) {
    const errors = identityErrors({ anchorsPem, issuerCertPem, issuerKeyPem });
    if (errors.length) throw new MeshError(`the identity in ${state.display}/identity is not usable: ${errors.join('; ')}`, 'the control plane keeps the identity it has');
  }
  let issuer: Issuer;
  try {
    issuer = new Issuer({ certPem: issuerCertPem, keyPem: issuerKeyPem });
  } catch {
    throw new MeshError(`the issuer in ${state.display}/identity cannot be read`, "restore it, or run 'mesh uninstall --purge' and 'mesh install'");
  }
  return { anchorsPem, issuerCertPem, issuerKeyPem, issuer, certLifetimeMs: cfg.certLifetimeMs };
}

export function rotationState(state: StateDir): RotationState | undefined {
  return readJson<RotationState>(identityPaths(state).rotation, 'trust anchor rotation state', `remove ${identityPaths(state).rotation} if no rotation is under way`);
}

export function clearRotation(state: StateDir): void {
  const p = identityPaths(state);
  for (const f of [p.rotation, p.prevAnchorKey, p.nextAnchorKey]) if (existsSync(f)) rmSync(f, { force: true });
}
