// Tracing and telemetry for each exchange: its trace context (a span when tracing exports them),
// the tap, the access log. Response counts and latency are kept by the response writer.
import type { Layer } from '../exchange.js';
import type { Telemetry } from '../telemetry.js';

export const observe = (tel: Telemetry, direction: 'inbound' | 'outbound'): Layer => {
  const kind = direction === 'outbound' ? 'client' : 'server';
  return (next) => (ex) => {
    tel.traceContext(ex, kind);
    tel.watch(ex, direction);
    next(ex);
  };
};
