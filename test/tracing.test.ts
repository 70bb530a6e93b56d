// Traces and access logs across the sample: ingress → productpage → reviews → ratings.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { TestMesh, request, waitFor } from './support/mesh.js';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
}

describe('tracing and access logs', () => {
  const m = new TestMesh();
  const spans: (OtlpSpan & { service: string })[] = [];
  let collector: http.Server;
  let ingress = '';

  before(async () => {
    collector = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const doc = JSON.parse(body) as { resourceSpans: { resource: { attributes: { key: string; value: { stringValue: string } }[] }; scopeSpans: { spans: OtlpSpan[] }[] }[] };
        for (const rs of doc.resourceSpans) {
          const service = rs.resource.attributes.find((a) => a.key === 'service.name')!.value.stringValue;
          for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ ...s, service });
        }
        res.end('{}');
      });
    });
    await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(collector.address() as AddressInfo).port}/v1/traces`;
    const r = await m.cli(['demo', '--ingress-port', '0', '--no-traffic', '--access-log', '--trace-collector', url], { timeoutMs: 90_000 });
    assert.equal(r.code, 0, r.stderr);
    ingress = /http:\/\/(127\.0\.0\.1:\d+)\/productpage/.exec(r.stdout)![1]!;
  });
  after(async () => {
    await m.cleanup();
    collector.close();
  });

  it('records one trace from the ingress through productpage and reviews to ratings', async () => {
    // reviews v2 and v3 call ratings; keep loading until one of them served a page.
    await waitFor('a page served by reviews v2 or v3', async () => /reviews-v[23]/.test((await request(ingress, { path: '/productpage' })).body), 20_000, 50);
    const chain = await waitFor('the spans of that request to reach the collector', () => {
      for (const traceId of new Set(spans.map((s) => s.traceId))) {
        const trace = spans.filter((s) => s.traceId === traceId);
        const ratings = trace.find((s) => s.service === 'ratings' && s.kind === 2);
        if (!ratings) continue;
        // Walk parent links from the ratings server span up to the root.
        const path: string[] = [];
        for (let s: (typeof trace)[number] | undefined = ratings; s; s = trace.find((p) => p.spanId === s!.parentSpanId)) path.push(`${s.service}:${s.kind === 2 ? 'server' : 'client'}`);
        if (path[path.length - 1] === 'ingress:client') return path.reverse();
      }
      return undefined;
    }, 15_000, 200);
    assert.deepEqual(chain, [
      'ingress:client', 'productpage:server', 'productpage:client', 'reviews:server', 'reviews:client', 'ratings:server',
    ]);
  });

  it('keeps the trace id a client sends in traceparent, and reads B3', async () => {
    const w3c = '4bf92f3577b34da6a3ce929d0e0e4736';
    await request(ingress, { path: '/productpage', headers: { traceparent: `00-${w3c}-00f067aa0ba902b7-01` } });
    const b3 = 'a3ce929d0e0e4736';
    await request(ingress, { path: '/productpage', headers: { 'x-b3-traceid': b3, 'x-b3-spanid': '00f067aa0ba902b7', 'x-b3-sampled': '1' } });
    await waitFor('both traces at the collector', () =>
      spans.some((s) => s.traceId === w3c && s.service === 'details') && spans.some((s) => s.traceId === b3.padStart(32, '0') && s.service === 'details'), 15_000, 200);
  });

  it('writes a JSON access log line per request with identities and the trace id', async () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    await request(ingress, { path: '/productpage', headers: { traceparent: `00-${traceId}-b7ad6b7169203331-01` } });
    const logs = join(m.dir, 'logs');
    const line = await waitFor('the details sidecar to log the request', () => {
      for (const f of readdirSync(logs).filter((n) => n.startsWith('details-'))) {
        const hit = readFileSync(join(logs, f), 'utf8').split('\n').find((l) => l.includes(traceId) && l.includes('"inbound"'));
        if (hit) return hit;
      }
      return undefined;
    });
    const entry = JSON.parse(line!) as Record<string, unknown>;
    assert.equal(entry.direction, 'inbound');
    assert.equal(entry.method, 'GET');
    assert.equal(entry.path, '/details/0');
    assert.equal(entry.status, 200);
    assert.equal(entry.client_id, 'spiffe://cluster.local/ns/default/sa/productpage');
    assert.equal(entry.server_id, 'spiffe://cluster.local/ns/default/sa/details');
    assert.equal(typeof entry.duration_ms, 'number');
    assert.ok((entry.bytes as number) > 0);
  });
});
