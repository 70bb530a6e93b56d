// The platform a command acts on, chosen once (--platform, else MESH_PLATFORM, else local): one object of
// operations per platform, so commands never name a platform. Each object loads its modules on first use: a
// local call never loads the Kubernetes client, a sidecar never loads the CA.
import { MeshError } from '../util/errors.js';
import { localPlatform } from './local/index.js';
import { kubernetesPlatform } from './kubernetes/index.js';
import type { WorkloadRecord } from './local/state.js';
import type { WorkloadSpec } from './local/workloads.js';

export type { WorkloadRecord } from './local/state.js';
export type { RestartPolicy, WorkloadSpec } from './local/workloads.js';
import type { RotationResult } from './local/rotation.js';
import type { RotationState } from './local/identity.js';
import type { Phase } from '../identity/phases.js';
import type { TapPoll } from '../api/tap.js';
import type { DashboardBackend } from '../dashboard/server.js';
import type { EditableConfig } from '../api/config-store.js';
import type { CheckReport, RunOptions } from '../check/runner.js';

export interface PlatformOptions {
  /** local or kubernetes; default $MESH_PLATFORM, else local. */
  platform?: string;
  /** local: the state directory (default $MESH_HOME or ~/.mesh). */
  stateDir?: string;
  /** kubernetes: kubeconfig file and context (default as kubectl picks them). */
  kubeconfig?: string;
  context?: string;
  /** No banner naming the platform and its state (output is JSON, or the process is a daemon). */
  quiet?: boolean;
  /** The command, as `mesh <command>` names it in errors (e.g. 'identity show'). */
  command?: string;
}

export type PlatformName = 'local' | 'kubernetes';

/** Read-only calls to the control plane, wherever it runs. */
export interface ControlReader {
  get<T>(path: string): Promise<T>;
}

/** `mesh install`: the options of both platforms (each refuses the other's). */
export interface InstallFlags {
  trustDomain: string;
  controlPort?: string;
  certLifetime?: string;
  scrapeInterval?: string;
  crds?: boolean;
  apply?: boolean;
  image?: string;
  wait?: string;
  identityTrustAnchorsFile?: string;
  identityIssuerCertificateFile?: string;
  identityIssuerKeyFile?: string;
}

export interface UninstallFlags {
  purge?: boolean;
  apply?: boolean;
  crds?: boolean;
}

export interface ControlFlags {
  port?: string;
  webhookPort?: string;
  scrapeInterval?: string;
}

export interface ProxyFlags {
  name?: string;
  version?: string;
  namespace?: string;
  appPort?: string;
  instance?: string;
  inboundPort?: string;
  outboundPort?: string;
  adminPort?: string;
  trustAnchors?: string;
}

export interface PrometheusConfigFlags {
  scrapeIntervalMs: number;
  fileSd?: string;
  trustDomain?: string;
}

export interface DemoFlags {
  ingressPort?: string;
  traceCollector?: string;
  accessLog?: boolean;
  down?: boolean;
  rate: string;
  traffic: boolean;
}

/** `mesh workloads`: the records for -o json, and the table the platform shows them as. */
export interface WorkloadList {
  records: unknown[];
  head: string[];
  rows: string[][];
  /** Printed instead of an empty table. */
  empty: string;
  /** Printed under the table. */
  notes: string[];
}

/** A tap opened on the control plane: the first poll, the next ones, and its end. */
export interface TapSession {
  first: TapPoll;
  poll(after: number, waitMs: number): Promise<TapPoll>;
  close(): Promise<void>;
}

/** `mesh identity show`. */
export interface IdentityInfo {
  trustDomain: string;
  certLifetimeMs: number;
  trustAnchors: CertSummary[];
  issuer: CertSummary;
  rotation: RotationState | null;
}

export interface CertSummary {
  subject: string;
  notBefore: string;
  notAfter: string;
  fingerprint: string;
}

/** The mesh's certificate authority: what it is, and its rotations. */
export interface IdentityOps {
  show(): IdentityInfo;
  rotateIssuer(o: { lifetimeMs?: number }): Promise<RotationResult>;
  rotateAnchor(phase: Phase | undefined, o: { lifetimeMs?: number; waitMs: number; force?: boolean; progress: (m: string) => void }): Promise<RotationResult>;
  /** Makes the running control plane load the identity files again. */
  reload(): Promise<void>;
}

/** A runtime started in the foreground (control plane, sidecar): stopped on a signal. */
export interface Running {
  close(): Promise<void>;
}

export interface Platform {
  readonly name: PlatformName;
  install(f: InstallFlags, given: string[]): Promise<void>;
  uninstall(f: UninstallFlags): Promise<void>;
  /** Runs `mesh check` (or `--pre`) through the one runner; the platform picks the categories and the view. */
  check(o: { pre?: boolean; controlPort?: number }, run: RunOptions): Promise<CheckReport>;
  routeStore(): Promise<EditableConfig>;
  policyStore(): Promise<EditableConfig>;
  controlReader(): Promise<ControlReader>;
  /** The control plane's version, or why there is none. */
  serverVersion(): Promise<{ version?: string; why?: string }>;
  runControl(f: ControlFlags): Promise<Running>;
  runProxy(f: ProxyFlags): Promise<Running>;
  /** A Prometheus config that scrapes every proxy. */
  prometheusConfig(f: PrometheusConfigFlags): Promise<string>;
  workloads(): Promise<WorkloadList>;
  demo(f: DemoFlags): Promise<void>;
  /** `mesh run` / `mesh ingress -d`: a workload and its sidecar in the background, once they answer. */
  launchWorkload(spec: WorkloadSpec): Promise<{ rec: WorkloadRecord; appListening: boolean }>;
  /** `mesh run` in the foreground: its exit code. */
  runWorkload(spec: WorkloadSpec, onStarted: (rec: WorkloadRecord) => void): Promise<number>;
  /** Stops the named instances and every instance of `service`; refuses names that do not run. */
  stopWorkloads(o: { instances: string[]; service?: string }): Promise<WorkloadRecord[]>;
  /** `mesh tap` / `mesh top`: query as GET /v1/tap takes it. */
  openTap(query: URLSearchParams): Promise<TapSession>;
  /** What `mesh dashboard` serves from: the control plane's API with the admin credential. */
  dashboardBackend(): Promise<DashboardBackend & { close(): void }>;
  identity(): Promise<IdentityOps>;
}

export function platformName(o: PlatformOptions): PlatformName {
  const platform = o.platform ?? (process.env.MESH_PLATFORM || 'local');
  if (platform !== 'local' && platform !== 'kubernetes') throw new MeshError(`unknown platform '${platform}'`, 'use --platform local or --platform kubernetes');
  return platform;
}

/** A kubeconfig alone does not switch to Kubernetes: local users with a kubeconfig for other work would be surprised. */
export function platformFor(o: PlatformOptions): Platform {
  return platformName(o) === 'kubernetes' ? kubernetesPlatform(o) : localPlatform(o);
}
