// What the control plane's telemetry endpoints take and answer (GET /v1/stat, GET /v1/edges): computed in
// control/telemetry from scraped metrics or Prometheus, rendered by the CLI and the dashboard.

export type ResourceKind = 'deployment' | 'pod' | 'service' | 'namespace';

export interface ResourceRef {
  /** Undefined for a bare name: a deployment of that name, else a service. */
  kind?: ResourceKind;
  name: string;
  namespace: string;
}

export interface StatQuery {
  kind: ResourceKind;
  name?: string;
  namespace: string;
  allNamespaces: boolean;
  windowMs: number;
  from?: ResourceRef;
  to?: ResourceRef;
}

export interface StatRow {
  namespace: string;
  kind: ResourceKind;
  name: string;
  meshed: string;
  /** The mesh's control plane (its MESHED count says nothing about the mesh's coverage). */
  control_plane?: boolean;
  /** 0..1, null without traffic. */
  success: number | null;
  rps: number | null;
  latency_ms_p50: number | null;
  latency_ms_p95: number | null;
  latency_ms_p99: number | null;
  tcp_open_connections: number | null;
  tcp_read_bytes_rate: number | null;
  tcp_write_bytes_rate: number | null;
  /** Requests per second that authorization refused (403) on the row's inbound side; null when none. */
  denied_rps?: number | null;
  /** What its requests spoke, from their responses: grpc (a grpc_status label), http, or both (grpc,http); null without traffic. */
  protocol?: string | null;
}

export interface StatResult {
  rows: StatRow[];
  windowMs: number;
  source: string;
  /** Said under the table: no traffic yet, partial window. */
  hints: string[];
}

export interface EdgesQuery {
  kind: 'deployment' | 'pod';
  namespace: string;
  allNamespaces: boolean;
  windowMs: number;
}

export interface Edge {
  src: string;
  src_namespace: string;
  dst: string;
  dst_namespace: string;
  client_id: string;
  server_id: string;
  /** Every request and connection between the two went over mutual TLS. */
  secured: boolean;
  rps: number;
  /** Opaque TCP connections open between the two now (mesh/1 tunnels). */
  tcp_connections: number;
  /** What went between them: grpc, http, tcp, comma-joined (grpc when responses carried grpc_status). */
  protocol: string;
}

export interface EdgesResult {
  edges: Edge[];
  windowMs: number;
  source: string;
  hints: string[];
}

/** mesh authz: a workload's inbound traffic per authorization rule (GET /v1/authz). */
export interface AuthzRow {
  /** "rule 2 of policy default/default", "default allow", "default deny", "no policy". */
  rule: string;
  clients: string[];
  allowedRps: number;
  deniedRps: number;
  success: number | null;
  latency_ms_p50: number | null;
  latency_ms_p95: number | null;
  latency_ms_p99: number | null;
  /** How success and latency were had: counted per rule by the proxies, or estimated from the rule's clients. */
  latency?: 'measured' | 'estimated';
}

export interface AuthzResult {
  namespace: string;
  deployment: string;
  windowMs: number;
  rows: AuthzRow[];
}
