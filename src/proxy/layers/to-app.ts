// The inbound transport: the request goes to the app on localhost, in the protocol it serves.
// It decides nothing: how each try went goes up to the layers above.
import { TOP, type Exchange } from '../exchange.js';
import { relay, type Relaying } from '../relay.js';
import type { Upstream, UpstreamRequest } from '../wire/h1-client.js';

/** What speaks to the app: pooled HTTP/1.1 connections (wire/h1-client) or an HTTP/2 session (wire/h2-client). */
export interface AppClient {
  request(o: UpstreamRequest): Upstream;
}

function describe(ex: Exchange): string {
  return `app on 127.0.0.1:${ex.appPort}`;
}

/** The bottom of the inbound stack; its report is set when the stack is built. */
export function toApp(pool: AppClient): Relaying {
  const self: Relaying = {
    send(ex) {
      relay(ex, pool.request({ host: '127.0.0.1', port: ex.appPort, method: ex.req.method, path: ex.path, headers: ex.headers }), self);
    },
    report: TOP,
    describe,
  };
  return self;
}
