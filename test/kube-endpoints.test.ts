// Which EndpointSlice entries become mesh endpoints: a pure function, table-driven.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { endpointsFrom } from '../src/platform/kubernetes/control-platform.js';
import type { EndpointSlice, Pod } from '../src/platform/kubernetes/resources.js';

const meshedPod = (name: string, o: { version?: string; sa?: string; deleting?: boolean; plain?: boolean } = {}): Pod => ({
  metadata: { name, namespace: 'shop', labels: { app: 'web', ...(o.version ? { version: o.version } : {}) }, ...(o.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) },
  spec: { serviceAccountName: o.sa, containers: [{ name: 'app' }, ...(o.plain ? [] : [{ name: 'mesh-proxy' }])] },
  status: { podIP: '10.9.0.1' },
});
const sliceOf = (entries: NonNullable<EndpointSlice['endpoints']>, service = 'web'): EndpointSlice => ({
  metadata: { name: 's', namespace: 'shop', labels: service ? { 'kubernetes.io/service-name': service } : {} }, endpoints: entries,
});
const entry = (pod: string, ready: boolean | null = true, kind = 'Pod') => ({ addresses: ['10.9.0.7'], conditions: { ready }, targetRef: { kind, name: pod } });

describe('endpointsFrom', () => {
  const rows: { name: string; pod: Pod; slice: EndpointSlice; expected: string[] }[] = [
    { name: 'a ready meshed pod at the proxy port with its ServiceAccount identity and version', pod: meshedPod('a', { version: 'v2', sa: 'web-sa' }), slice: sliceOf([entry('a')]), expected: ['web 10.9.0.7:4143 v2 spiffe://td/ns/shop/sa/web-sa'] },
    { name: 'the default ServiceAccount and version when none is given', pod: meshedPod('a'), slice: sliceOf([entry('a', null)]), expected: ['web 10.9.0.7:4143 default spiffe://td/ns/shop/sa/default'] },
    { name: 'nothing for a pod that is not ready', pod: meshedPod('a'), slice: sliceOf([entry('a', false)]), expected: [] },
    { name: 'nothing for a pod without the mesh proxy', pod: meshedPod('a', { plain: true }), slice: sliceOf([entry('a')]), expected: [] },
    { name: 'nothing for a pod being deleted', pod: meshedPod('a', { deleting: true }), slice: sliceOf([entry('a')]), expected: [] },
    { name: 'nothing for an address that is not a pod', pod: meshedPod('a'), slice: sliceOf([entry('a', true, 'Node')]), expected: [] },
    { name: 'nothing for a slice of no service', pod: meshedPod('a'), slice: sliceOf([entry('a')], ''), expected: [] },
    { name: 'nothing for a pod the cache does not have', pod: meshedPod('other'), slice: sliceOf([entry('a')]), expected: [] },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const pods = new Map([[`shop/${row.pod.metadata!.name}`, row.pod]]);
      const got = endpointsFrom([row.slice], pods, 'td').map((e) => `${e.service} ${e.address}:${e.port} ${e.version} ${e.identity}`);
      assert.deepEqual(got, row.expected);
    });
  }
});
