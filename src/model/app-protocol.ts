// The protocol an app serves on its port, which its inbound sidecar speaks to it: HTTP/1.1 unless
// declared (`mesh run --app-protocol`, or on Kubernetes the Service port's appProtocol or name).

export type AppProtocol = 'http1' | 'h2c';
export const APP_PROTOCOLS: readonly AppProtocol[] = ['http1', 'h2c'];

export function isAppProtocol(v: unknown): v is AppProtocol {
  return v === 'http1' || v === 'h2c';
}

/**
 * A Kubernetes Service port's protocol to its app: h2c when its appProtocol says HTTP/2 cleartext or gRPC
 * (`kubernetes.io/h2c`, `grpc`, `http2`), or, without one, its name does as Istio reads it (`grpc`, `grpc-*`,
 * `http2`, `http2-*`); else HTTP/1.1. grpc-web is HTTP/1.1.
 */
export function servicePortProtocol(p: { name?: string; appProtocol?: string }): AppProtocol {
  const a = p.appProtocol?.toLowerCase();
  if (a !== undefined && a !== '') return a === 'kubernetes.io/h2c' || a === 'grpc' || a === 'http2' || a === 'h2c' ? 'h2c' : 'http1';
  const n = p.name?.toLowerCase() ?? '';
  return /^(grpc|http2)(-|$)/.test(n) && !n.startsWith('grpc-web') ? 'h2c' : 'http1';
}
