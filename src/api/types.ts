// What goes over the control plane's API: the request and response bodies of its endpoints, shared by the
// control plane that serves them, the proxies and the CLI that call them.
import type { EndpointInfo, Snapshot } from '../model/snapshot.js';

/** A registered proxy (GET /v1/endpoints lists them; the registry keeps them). */
export interface EndpointRecord extends EndpointInfo {
  pid?: number;
  /** The proxy's admin address (metrics, readiness). */
  admin?: string;
  /** False for a pod without a proxy (Kubernetes), listed for telemetry's MESHED count only. */
  meshed?: boolean;
  /** The mesh's own control plane (Kubernetes: a pod of mesh-system), listed beside the workloads, never meshed. */
  controlPlane?: boolean;
  /** An ingress or a client-only workload registers as a proxy to scrape and check, but serves no endpoint (port 0). */
  role?: 'sidecar' | 'ingress' | 'client';
  /** The snapshot version the proxy last applied (reported with each heartbeat). */
  configVersion?: string;
  registeredAt: string;
  /** When the proxy's last registration or heartbeat arrived (ISO time; set by the registry). */
  lastSeen?: string;
}

/** POST /v1/endpoints (mesh certificate of that workload): registration and heartbeat. */
export type RegisterRequest = Pick<EndpointRecord, 'instance' | 'namespace' | 'service' | 'version' | 'port' | 'pid' | 'admin' | 'role' | 'configVersion'>;

export interface RegisterResponse {
  ok: true;
  /** The snapshot version after the registration. */
  version: string;
}

/** POST /v1/certificates: a workload's certificate, by renewal (its current one) or bootstrap (a join credential). */
export interface CertificateRequest {
  namespace: string;
  serviceAccount: string;
  /** PEM certificate signing request for the workload's key. */
  csr: string;
}

export interface CertificateResponse {
  identity: string;
  certificate: string;
  chain: string[];
  trustAnchors: string;
}

/** GET /v1/identity and POST /v1/identity/reload (admin). */
export interface IdentityInfo {
  trustDomain: string;
  trustAnchors: string;
  issuer: string;
  certLifetimeMs: number;
}

/** GET /v1/version (anyone). */
export interface VersionInfo {
  version: string;
  trustDomain: string;
}

/** GET /v1/watch?since=<version> (mesh certificate): the snapshot once it differs from since, else 204 after a while. */
export type WatchResponse = Snapshot;

/** Every error answer: what went wrong, and sometimes how to fix it. */
export interface ErrorBody {
  error: string;
  hint?: string;
}
