// The control plane's trace store: what the traces page lists. Spans arrive in the order their proxies export
// them (the innermost call first); a trace names its services in the order they joined it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TraceStore } from '../src/control/traces.js';

const ns = (ms: number) => String(BigInt(ms) * 1_000_000n);
const batch = (service: string, spanId: string, parent: string, start: number, end: number) => ({
  resourceSpans: [{
    resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] },
    scopeSpans: [{ spans: [{ traceId: 't1', spanId, parentSpanId: parent, name: `inbound GET ${service}`, startTimeUnixNano: ns(start), endTimeUnixNano: ns(end) }] }],
  }],
});

describe('trace store', () => {
  it('lists a trace with its services in call order, whatever order their spans came in', () => {
    const store = new TraceStore();
    store.add(batch('ratings', 'd', 'c', 1_000_030, 1_000_040));
    store.add(batch('details', 'b2', 'b', 1_000_012, 1_000_015));
    store.add(batch('reviews', 'c', 'b', 1_000_020, 1_000_050));
    store.add(batch('productpage', 'b', 'a', 1_000_010, 1_000_060));
    store.add(batch('ingress', 'a', '', 1_000_000, 1_000_070));
    const [t] = store.list();
    assert.deepEqual(t!.services, ['ingress', 'productpage', 'details', 'reviews', 'ratings']);
    assert.equal(t!.root, 'ingress: inbound GET ingress');
    assert.equal(t!.durationMs, 70);
    assert.equal(t!.spans, 5);
  });
});
