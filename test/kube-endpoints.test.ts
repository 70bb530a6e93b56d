// Which EndpointSlice entries become mesh endpoints, and which Service ports (with their resolved target ports) a
// service's snapshot entry carries: pure functions, table-driven.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { endpointsFrom, servicePortsFrom } from '../src/platform/kubernetes/control-platform.js';
import type { EndpointSlice, Pod, Service } from '../src/platform/kubernetes/resources.js';
import { servicePortMap, type ServiceInfo } from '../src/model/snapshot.js';

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

describe('servicePortsFrom', () => {
  type SvcPort = NonNullable<NonNullable<Service['spec']>['ports']>[number];
  type SlicePort = NonNullable<EndpointSlice['ports']>[number];
  const service = (name: string, ports: SvcPort[]): Service => ({ metadata: { name, namespace: 'shop' }, spec: { ports } });
  const slice = (name: string, svc: string, ports: SlicePort[]): EndpointSlice => ({
    metadata: { name, namespace: 'shop', labels: { 'kubernetes.io/service-name': svc } }, ports, endpoints: [entry('a')],
  });
  const rows: { name: string; services: Service[]; slices: EndpointSlice[]; expected: Record<string, [number, number][]> }[] = [
    { name: 'a numeric targetPort as it is', services: [service('web', [{ port: 80, targetPort: 8080 }])], slices: [slice('web-1', 'web', [{ port: 8080 }])],
      expected: { 'shop/web': [[80, 8080]] } },
    { name: 'the port itself when there is no targetPort', services: [service('web', [{ port: 9090 }])], slices: [],
      expected: { 'shop/web': [[9090, 9090]] } },
    { name: "a named targetPort resolved through the slice's port named like the Service port",
      services: [service('web', [{ name: 'web', port: 80, targetPort: 'http' }])], slices: [slice('web-1', 'web', [{ name: 'web', port: 8080, protocol: 'TCP' }])],
      expected: { 'shop/web': [[80, 8080]] } },
    { name: 'both ports of a Service with two, numeric and named, in port order',
      services: [service('web', [{ name: 'metrics', port: 9000, targetPort: 'admin' }, { name: 'http', port: 80, targetPort: 8080 }])],
      slices: [slice('web-1', 'web', [{ name: 'http', port: 8080 }, { name: 'metrics', port: 9090 }])],
      expected: { 'shop/web': [[80, 8080], [9000, 9090]] } },
    { name: 'a targetPort the pod does not declare, as it is (the sidecar sends it to the default app port)',
      services: [service('web', [{ port: 80, targetPort: 7070 }])], slices: [slice('web-1', 'web', [{ port: 8080 }])],
      expected: { 'shop/web': [[80, 7070]] } },
    { name: 'no named targetPort that no slice of the Service resolves yet',
      services: [service('web', [{ name: 'web', port: 80, targetPort: 'http' }, { name: 'plain', port: 81, targetPort: 8081 }])],
      slices: [slice('other-1', 'other', [{ name: 'web', port: 8080 }])],
      expected: { 'shop/web': [[81, 8081]] } },
    { name: 'the first slice by name when slices of a rollout resolve a name differently',
      services: [service('web', [{ name: 'web', port: 80, targetPort: 'http' }])],
      slices: [slice('web-2', 'web', [{ name: 'web', port: 8081 }]), slice('web-1', 'web', [{ name: 'web', port: 8080 }])],
      expected: { 'shop/web': [[80, 8080]] } },
    { name: 'no UDP port, and no Service without a TCP port',
      services: [service('dns', [{ port: 53, targetPort: 5353, protocol: 'UDP' }]), service('web', [{ port: 53, targetPort: 5353, protocol: 'UDP' }, { port: 80, targetPort: 8080 }])],
      slices: [], expected: { 'shop/web': [[80, 8080]] } },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const got = Object.fromEntries([...servicePortsFrom(row.services, row.slices)].map(([k, ports]) => [k, ports.map((p) => [p.port, p.targetPort])]));
      assert.deepEqual(got, row.expected);
    });
  }
});

describe("a snapshot service entry's port map", () => {
  const svc = (ports: unknown): ServiceInfo => ({ namespace: 'shop', name: 'web', endpoints: [], ...(ports === undefined ? {} : { ports }) } as ServiceInfo);
  const rows: { name: string; ports: unknown; expected: [number, number][]; error?: RegExp }[] = [
    { name: 'is empty for an entry without ports (an older snapshot, the local platform)', ports: undefined, expected: [] },
    { name: 'maps each port to its target', ports: [{ port: 80, targetPort: 8080 }, { port: 9000, targetPort: 9090 }], expected: [[80, 8080], [9000, 9090]] },
    { name: 'is ignored, with an error, when ports is not a list', ports: { port: 80 }, expected: [], error: /shop\/web: ports is not a list/ },
    { name: 'is ignored, with an error, when an entry is not two ports', ports: [{ port: 80, targetPort: 8080 }, { port: 81, targetPort: 'http' }], expected: [], error: /ports\[1\] is not \{port, targetPort\}/ },
    { name: 'is ignored, with an error, for a port out of range', ports: [{ port: 0, targetPort: 8080 }], expected: [], error: /ports\[0\]/ },
    { name: 'is ignored, with an error, when a port is listed twice', ports: [{ port: 80, targetPort: 8080 }, { port: 80, targetPort: 9090 }], expected: [], error: /names port 80 twice/ },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const got = servicePortMap(svc(row.ports));
      assert.deepEqual([...got.map], row.expected);
      if (row.error) assert.match(got.error ?? '', row.error);
      else assert.equal(got.error, undefined);
    });
  }
  it('is empty for no entry (the workload has no Service yet)', () => {
    assert.deepEqual(servicePortMap(undefined), { map: new Map() });
  });
});
