// The proxies' spans over the control plane's own API, POST /v1/traces (OTLP/HTTP JSON), from a proxy with a mesh
// certificate: on Kubernetes a pod cannot reach a receiver on the control plane's loopback, and the API's TLS with the
// proxy's certificate is already there. Bounded: a body of at most 1 MiB (a proxy sends at most 512 spans at a time),
// into the store's fixed number of traces.
import { readJsonBody, sendJson } from '../util/http.js';
import type { Route } from './router.js';
import type { TraceStore } from './traces.js';

const MAX_BODY = 1024 * 1024;

export function traceIngestRoutes(traces: TraceStore | undefined): Route[] {
  if (!traces) return [];
  return [{
    method: 'POST', path: '/v1/traces', who: 'proxy', async handle({ req, res }) {
      sendJson(res, 200, { accepted: traces.add(await readJsonBody(req, MAX_BODY)) });
    },
  }];
}
