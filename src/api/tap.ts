// The tap API's bodies: the CLI opens and polls a tap (GET /v1/tap, admin), proxies learn which taps concern them
// (GET /v1/tap/watch) and report what they saw (POST /v1/tap/report), each with its own mesh certificate.

/** What the control plane asks of this proxy for one tap (filters are evaluated here, before anything is sent). */
export interface TapSpec {
  id: string;
  /** Only requests to this destination (outbound): namespace, service and optionally version or pod. */
  to?: { namespace: string; service?: string; deployment?: string; pod?: string };
  method?: string;
  pathPrefix?: string;
  authority?: string;
  /** Requests reported per second, at most (this proxy counts its own). */
  maxRps: number;
  /** Header names to redact besides REDACTED: lower case; a trailing * matches a prefix. */
  redact: string[];
  headers: boolean;
}

export interface TapEvent {
  direction: 'inbound' | 'outbound';
  method: string;
  authority: string;
  path: string;
  status: number;
  /** Time to the response head, and to the end of the response, in microseconds. */
  latencyUs: number;
  durationUs: number;
  bytes: number;
  src: string;
  dst: string;
  srcPod: string;
  dstPod: string;
  tls: boolean;
  grpcStatus?: string;
  /** When the proxy answered itself: the error code (denied, timeout, ...), and for a denial the policy's reason. */
  error?: string;
  reason?: string;
  requestHeaders?: [string, string][];
  responseHeaders?: [string, string][];
  at: number;
}

/** The events a poller gets, and where to continue from. */
export interface TapPoll {
  id: string;
  events: (TapEvent & { seq: number; proxy: string })[];
  next: number;
  /** Events dropped because nobody polled them in time (the buffer is bounded). */
  dropped: number;
  /** Proxies the tap selects right now. */
  proxies: number;
}

/** GET /v1/tap/watch?instance=&since= : the taps that concern this proxy, once they differ from since. */
export interface TapWatch {
  version: string;
  taps: TapSpec[];
}

/** POST /v1/tap/report: events by tap id. */
export interface TapReport {
  instance: string;
  events: Record<string, TapEvent[]>;
}

export interface TapReportResponse {
  /** The taps still open; events for others are dropped. */
  active: string[];
}
