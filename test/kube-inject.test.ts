// mesh inject as a pure transform: what the pod gets, which kinds, the report, idempotence, and the init script.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { execFileSync, spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { initScript, injectObject, injectYaml, reportLines, type InjectReport } from '../src/platform/kubernetes/inject.js';
import { MeshError } from '../src/util/errors.js';
import { validateK8s } from './support/k8s-openapi.js';
import { fixture, golden } from './support/golden.js';
import { injectOpts } from './support/kube-fixtures.js';
import { assignInboundPorts, formatInboundPorts, parseInboundPorts } from '../src/platform/kubernetes/inbound-ports.js';


type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const docs = (yaml: string): Obj[] => {
  const all = parseAllDocuments(yaml);
  assert.ok(Array.isArray(all));
  return all.map((d) => d.toJS() as Obj).filter(Boolean);
};
const deployment = (name: string, spec: Obj = {}, annotations?: Record<string, string>): Obj => ({
  apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, ...(annotations ? { annotations } : {}) },
  spec: {
    selector: { matchLabels: { app: name } },
    template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'app', image: 'app:1' }], ...spec } },
  },
});

describe('mesh inject (pure transform)', () => {
  it('injects the sample manifests as in the golden file, and reports each resource', () => {
    const r = injectYaml(fixture('kube', 'app.yaml'), injectOpts());
    golden('kube-inject-app.yaml', r.output);
    assert.deepEqual(reportLines(r.reports), [
      'service "reviews" skipped',
      'deployment "reviews-v1" injected',
      'cronjob "report" injected',
      '‼ daemonset "node-agent": hostNetwork: true — pods on the host network cannot be given a proxy',
      'daemonset "node-agent" skipped (hostNetwork)',
      '‼ pod "dns-client": UDP port 53 — UDP is not proxied, that traffic bypasses the mesh',
      'pod "dns-client" injected',
      'statefulset "ratings" skipped (mesh.io/inject: disabled)',
      'configmap "settings" skipped',
    ]);
  });

  it('gives a multi-port pod one inbound listener per declared TCP port, redirected port by port', () => {
    const r = injectYaml(fixture('kube', 'multiport.yaml'), injectOpts());
    golden('kube-inject-multiport.yaml', r.output);
    const spec = docs(r.output)[0]!.spec.template.spec;
    const [init, proxy] = spec.initContainers as Obj[];
    const env = Object.fromEntries((proxy!.env as Obj[]).map((e) => [e.name, e.value ?? e.valueFrom.fieldRef.fieldPath]));
    // 9100 is skipped; 4144 is the sidecar's own port, so listeners go round it.
    assert.equal(env.MESH_INBOUND_PORTS, '4143=8080,4145=9090,4146=4144');
    assert.equal(env.MESH_APP_PORT, '8080');
    assert.match(init!.args[0], /--dports 4143,4145,4146,4191,9100 -j RETURN\n/);
    assert.match(init!.args[0], /--dport 9090 -j REDIRECT --to-ports 4145\n.*--dport 4144 -j REDIRECT --to-ports 4146\n.*-j REDIRECT --to-ports 4143\n/s);
    assert.doesNotThrow(() => validateK8s(docs(r.output)[0]!));
    assert.equal(injectYaml(r.output, injectOpts()).output, r.output, 'the same mapping when injected again');
  });

  it('keeps documents in order and leaves other kinds and skipped workloads as they were', () => {
    const input = fixture('kube', 'app.yaml');
    const before = docs(input);
    const after = docs(injectYaml(input, injectOpts()).output);
    assert.deepEqual(after.map((d) => `${d.kind}/${d.metadata.name}`), before.map((d) => `${d.kind}/${d.metadata.name}`));
    for (const i of [0, 3, 5, 6]) assert.deepEqual(after[i], before[i], `${before[i]!.kind} unchanged`);
    assert.match(injectYaml(input, injectOpts()).output, /^---\n# The bookinfo-style sample/, 'comments survive');
  });

  it('gives the pod a native sidecar proxy, the iptables init container, a token volume, probes, resources and the version annotation', () => {
    const [out] = docs(injectYaml(stringify(deployment('web', { initContainers: [{ name: 'migrate', image: 'm:1' }] })), injectOpts()).output);
    const tpl = out!.spec.template;
    const spec = tpl.spec;
    assert.equal(tpl.metadata.annotations['mesh.io/proxy-version'], '0.0.0-test');
    assert.deepEqual(spec.initContainers.map((c: Obj) => c.name), ['mesh-init', 'mesh-proxy', 'migrate']);
    assert.deepEqual(spec.containers.map((c: Obj) => c.name), ['app'], 'app containers untouched');
    const [init, proxy] = spec.initContainers as Obj[];
    assert.equal(proxy!.restartPolicy, 'Always');
    assert.deepEqual(proxy!.args, ['proxy', '--platform', 'kubernetes', '--inbound-port', '4143', '--outbound-port', '4140', '--admin-port', '4191']);
    const env = Object.fromEntries((proxy!.env as Obj[]).map((e) => [e.name, e.value ?? e.valueFrom.fieldRef.fieldPath]));
    assert.equal(env.MESH_NAMESPACE, 'metadata.namespace');
    assert.equal(env.MESH_POD_NAME, 'metadata.name');
    assert.equal(env.MESH_SERVICE_ACCOUNT, 'spec.serviceAccountName');
    assert.match(env.MESH_TRUST_ANCHORS, /^-----BEGIN CERTIFICATE-----\n/);
    assert.equal(env.MESH_CONTROL_ADDRESS, 'mesh-control.mesh-system.svc.cluster.local:8443');
    assert.equal(proxy!.readinessProbe.httpGet.path, '/ready');
    assert.equal(proxy!.livenessProbe.httpGet.path, '/live');
    assert.equal(proxy!.livenessProbe.httpGet.port, 4191);
    assert.ok(proxy!.resources.requests.cpu && proxy!.resources.requests.memory);
    assert.equal(proxy!.securityContext.runAsUser, 2102);
    assert.deepEqual(proxy!.volumeMounts, [{ name: 'mesh-identity-token', mountPath: '/var/run/secrets/mesh.io/serviceaccount', readOnly: true }]);
    const vol = (spec.volumes as Obj[]).find((v) => v.name === 'mesh-identity-token')!;
    assert.deepEqual(vol.projected.sources[0].serviceAccountToken, { audience: 'mesh.io', expirationSeconds: 600, path: 'token' });
    assert.deepEqual(init!.securityContext.capabilities.add, ['NET_ADMIN', 'NET_RAW']);
    assert.deepEqual(init!.command, ['/bin/sh', '-c']);
    assert.match(init!.args[0], /--uid-owner 2102 -j RETURN/);
    assert.match(init!.args[0], /--dports 4143,4191 -j RETURN/);
  });

  it('injects every workload kind, and into kind: List items', () => {
    const tpl = { metadata: { labels: { app: 'x' } }, spec: { containers: [{ name: 'c', image: 'c:1' }], restartPolicy: 'Never' } };
    const kinds: Obj[] = [
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'c:1' }] } },
      ...['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet'].map((kind) => ({
        apiVersion: 'apps/v1', kind, metadata: { name: kind.toLowerCase() },
        spec: { selector: { matchLabels: { app: 'x' } }, template: { ...tpl, spec: { ...tpl.spec, restartPolicy: 'Always' } }, ...(kind === 'StatefulSet' ? { serviceName: 'x' } : {}) },
      })),
      { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'job' }, spec: { template: tpl } },
      { apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'cron' }, spec: { schedule: '* * * * *', jobTemplate: { spec: { template: tpl } } } },
    ];
    const list = { apiVersion: 'v1', kind: 'List', items: kinds };
    const r = injectYaml(stringify(list), injectOpts());
    assert.deepEqual(r.reports.map((x) => `${x.kind} ${x.result}`), kinds.map((k) => `${k.kind} injected`));
    const out = parse(r.output.replace(/^---\n/, '')) as Obj;
    assert.equal(out.kind, 'List');
    for (const item of out.items as Obj[]) {
      assert.doesNotThrow(() => validateK8s(item), `${item.kind} is valid against the Kubernetes schema`);
      const podSpec = item.kind === 'Pod' ? item.spec : item.kind === 'CronJob' ? item.spec.jobTemplate.spec.template.spec : item.spec.template.spec;
      assert.equal(podSpec.initContainers[1].name, 'mesh-proxy', item.kind);
    }
  });

  it('produces objects valid against the Kubernetes OpenAPI schema', () => {
    for (const d of docs(injectYaml(fixture('kube', 'app.yaml'), injectOpts()).output)) {
      assert.doesNotThrow(() => validateK8s(d), `${d.kind} ${d.metadata.name}`);
    }
  });

  it('is idempotent on the sample: injecting twice gives what injecting once gives', () => {
    const once = injectYaml(fixture('kube', 'app.yaml'), injectOpts());
    const twice = injectYaml(once.output, injectOpts());
    assert.equal(twice.output, once.output);
    assert.deepEqual(twice.reports, once.reports);
  });

  it('re-injects with a new version in place, without stacking a second proxy', () => {
    const once = injectYaml(stringify(deployment('web')), injectOpts()).output;
    const upgraded = docs(injectYaml(once, { ...injectOpts(), version: '9.9.9', image: 'mesh:9.9.9' }).output)[0]!;
    const spec = upgraded.spec.template.spec;
    assert.deepEqual(spec.initContainers.map((c: Obj) => c.image), ['mesh:9.9.9', 'mesh:9.9.9']);
    assert.equal(spec.volumes.length, 1);
    assert.equal(upgraded.spec.template.metadata.annotations['mesh.io/proxy-version'], '9.9.9');
  });

  it('honours mesh.io/inject: disabled on the workload or its pod template', () => {
    const onWorkload = deployment('a', {}, { 'mesh.io/inject': 'disabled' });
    const onTemplate = deployment('b');
    onTemplate.spec.template.metadata.annotations = { 'mesh.io/inject': 'disabled' };
    const reports: InjectReport[] = [];
    assert.equal(injectObject(onWorkload, injectOpts(), reports), onWorkload);
    assert.equal(injectObject(onTemplate, injectOpts(), reports), onTemplate);
    assert.deepEqual(reports.map((r) => r.result), ['skipped', 'skipped']);
  });

  it('sends a pod\'s spans to its own collector when mesh.io/trace-collector names one (else mesh-control\'s), and warns about one that is not an http:// URL', () => {
    const env = (annotation?: string) => {
      const d = deployment('t');
      if (annotation !== undefined) d.spec.template.metadata.annotations = { 'mesh.io/trace-collector': annotation };
      const reports: InjectReport[] = [];
      const out = injectObject(d, injectOpts(), reports) as typeof d;
      const proxy = out.spec.template.spec.initContainers.find((c: { name: string }) => c.name === 'mesh-proxy');
      return { value: proxy.env.find((e: { name: string }) => e.name === 'MESH_TRACE_COLLECTOR')?.value, warnings: reports[0]!.warnings };
    };
    assert.deepEqual(env(), { value: undefined, warnings: [] });
    assert.deepEqual(env('http://otel-collector.observability:4318/v1/traces'), { value: 'http://otel-collector.observability:4318/v1/traces', warnings: [] });
    const bad = env('otel:4318');
    assert.equal(bad.value, undefined);
    assert.match(bad.warnings.join('\n'), /mesh\.io\/trace-collector: 'otel:4318' is not an http:\/\/ URL, ignored/);
  });

  it('skips, with a warning, pods that already have another mesh\'s sidecar', () => {
    const d = deployment('legacy', { containers: [{ name: 'app', image: 'a' }, { name: 'linkerd-proxy', image: 'l' }] });
    const reports: InjectReport[] = [];
    injectObject(d, injectOpts(), reports);
    assert.equal(reports[0]!.result, 'skipped');
    assert.match(reportLines(reports)[0]!, /^‼ deployment "legacy": it already has a sidecar \(linkerd-proxy\)/);
  });

  it('warns when there is nothing to inject, and refuses YAML it cannot parse', () => {
    const r = injectYaml('apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n', injectOpts());
    assert.deepEqual(reportLines(r.reports), ['service "s" skipped', '‼ nothing was injected: no Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob or Pod to inject']);
    assert.throws(() => injectYaml('kind: Pod\n  bad: [', injectOpts(), 'app.yaml'), (e: unknown) => e instanceof MeshError && /app.yaml: document 1 is not valid YAML/.test(e.message));
  });

  it('is idempotent for any workload (property)', () => {
    const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,8}[a-z0-9]$/);
    const container = fc.record({
      name, image: fc.constant('img:1'),
      ports: fc.option(fc.array(fc.record({ containerPort: fc.integer({ min: 1, max: 65535 }), protocol: fc.constantFrom('TCP', 'UDP') }), { maxLength: 2 }), { nil: undefined }),
    }, { requiredKeys: ['name', 'image'] });
    const podSpec = fc.record({
      containers: fc.array(container, { minLength: 1, maxLength: 2 }),
      initContainers: fc.option(fc.array(container, { maxLength: 2 }), { nil: undefined }),
      volumes: fc.option(fc.array(fc.record({ name, emptyDir: fc.constant({}) }), { maxLength: 2 }), { nil: undefined }),
      hostNetwork: fc.option(fc.boolean(), { nil: undefined }),
    }, { requiredKeys: ['containers'] });
    const annotations = fc.option(fc.dictionary(fc.constantFrom('a.io/x', 'mesh.io/inject', 'mesh.io/skip-inbound-ports', 'mesh.io/skip-outbound-ports'),
      fc.constantFrom('enabled', 'disabled', '80', '1000-2000', 'x')), { nil: undefined });
    const workload = fc.record({ kind: fc.constantFrom('Pod', 'Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'CronJob', 'Service', 'ConfigMap'), name, spec: podSpec, annotations })
      .map(({ kind, name: n, spec, annotations: a }) => {
        const meta = { name: n, ...(a ? { annotations: a } : {}) };
        if (kind === 'Pod') return { apiVersion: 'v1', kind, metadata: meta, spec };
        if (kind === 'Service' || kind === 'ConfigMap') return { apiVersion: 'v1', kind, metadata: { name: n }, data: { k: 'v' } };
        const template = { metadata: { labels: { app: n }, ...(a ? { annotations: a } : {}) }, spec };
        if (kind === 'CronJob') return { apiVersion: 'batch/v1', kind, metadata: { name: n }, spec: { schedule: '* * * * *', jobTemplate: { spec: { template } } } };
        return { apiVersion: kind === 'Job' ? 'batch/v1' : 'apps/v1', kind, metadata: { name: n }, spec: { template } };
      });
    fc.assert(fc.property(fc.array(workload, { minLength: 1, maxLength: 4 }), fc.boolean(), (objs, asList) => {
      const input = asList ? stringify({ apiVersion: 'v1', kind: 'List', items: objs }) : objs.map((o) => `---\n${stringify(o)}`).join('');
      const once = injectYaml(input, injectOpts());
      const twice = injectYaml(once.output, injectOpts());
      assert.equal(twice.output, once.output);
      assert.deepEqual(twice.reports.map((r) => r.result), once.reports.map((r) => r.result));
    }), { numRuns: 150 });
  });
});

describe('inbound listener ports', () => {
  const cases: { app: number[]; declared?: number[]; skip?: string[]; expected: string }[] = [
    { app: [], expected: '4143=80' },
    { app: [9080], expected: '4143=9080' },
    { app: [8080, 9090], expected: '4143=8080,4144=9090' },
    { app: [8080, 8080, 9090], expected: '4143=8080,4144=9090' },
    // Never a port a container declares, nor the proxy's own (4140, 4191), nor a skipped one.
    { app: [8080, 9090, 4144], expected: '4143=8080,4145=9090,4146=4144' },
    { app: [8080, 9090], declared: [4144, 4145], expected: '4143=8080,4146=9090' },
    { app: [8080, 9090], skip: ['4144:4150'], expected: '4143=8080,4151=9090' },
    { app: [9100, 8080, 9090], skip: ['9100'], expected: '4143=8080,4144=9090' },
    { app: [9100], skip: ['9000:9200'], expected: '4143=9100' },
    { app: [4191, 4140, 8080], expected: '4143=4191,4144=4140,4145=8080' },
  ];
  for (const c of cases) {
    it(`maps ${JSON.stringify(c.app)}${c.declared ? ` (declared ${c.declared})` : ''}${c.skip ? ` (skip ${c.skip})` : ''} to ${c.expected}`, () => {
      const ports = assignInboundPorts(c.app, { declared: c.declared, skipInbound: c.skip });
      assert.equal(formatInboundPorts(ports), c.expected);
      assert.deepEqual(parseInboundPorts(c.expected), ports, 'parse(format(x)) is x');
    });
  }

  it('refuses a malformed MESH_INBOUND_PORTS, saying which entry', () => {
    for (const [text, error] of [['4143', /entry '4143' is not LISTENER_PORT=APP_PORT/], ['4143=x', /'4143=x'/], ['0=80', /'0=80'/],
      ['4143=70000', /'4143=70000'/], ['4143=80,4143=81', /listener port 4143 twice/]] as const) {
      assert.throws(() => parseInboundPorts(text), error);
    }
    assert.deepEqual(parseInboundPorts(' 4143=80 , '), [{ listener: 4143, app: 80 }]);
  });
});

describe('mesh-init iptables script', () => {
  const haveTools = spawnSync('unshare', ['-n', 'iptables', '-t', 'nat', '-S']).status === 0;

  it('redirects inbound to 4143 and outbound to 4140, sparing the proxy\'s ports and uid; running twice is the same', { skip: !haveTools && 'needs root, unshare and iptables' }, () => {
    const script = initScript(['9090'], ['5432']);
    // A fresh network namespace per run: the host's rules are never touched.
    const rules = execFileSync('unshare', ['-n', 'sh', '-c', `${script}\n${script}\niptables -t nat -S`], { encoding: 'utf8' }).trim().split('\n');
    const mesh = rules.filter((r) => r.includes('MESH'));
    assert.deepEqual(mesh, [
      '-N MESH_INBOUND',
      '-N MESH_OUTBOUND',
      '-A PREROUTING -p tcp -j MESH_INBOUND',
      '-A OUTPUT -p tcp -j MESH_OUTBOUND',
      '-A MESH_INBOUND -p tcp -m multiport --dports 4143,4191,9090 -j RETURN',
      '-A MESH_INBOUND -p tcp -j REDIRECT --to-ports 4143',
      '-A MESH_OUTBOUND -m owner --uid-owner 2102 -j RETURN',
      '-A MESH_OUTBOUND -o lo -j RETURN',
      '-A MESH_OUTBOUND -p tcp -m multiport --dports 5432 -j RETURN',
      '-A MESH_OUTBOUND -p tcp -j REDIRECT --to-ports 4140',
    ]);
  });

  it('redirects each declared app port to its own listener, and splits long port lists (multiport takes 15)', { skip: !haveTools && 'needs root, unshare and iptables' }, () => {
    const skip = Array.from({ length: 14 }, (_, i) => String(10000 + i));
    const script = initScript(skip, [], parseInboundPorts('4143=8080,4144=9090'));
    const rules = execFileSync('unshare', ['-n', 'sh', '-c', `${script}\n${script}\niptables -t nat -S MESH_INBOUND`], { encoding: 'utf8' }).trim().split('\n');
    assert.deepEqual(rules, [
      '-N MESH_INBOUND',
      `-A MESH_INBOUND -p tcp -m multiport --dports 4143,4144,4191,${skip.slice(0, 12).join(',')} -j RETURN`,
      `-A MESH_INBOUND -p tcp -m multiport --dports ${skip.slice(12).join(',')} -j RETURN`,
      '-A MESH_INBOUND -p tcp -m tcp --dport 9090 -j REDIRECT --to-ports 4144',
      '-A MESH_INBOUND -p tcp -j REDIRECT --to-ports 4143',
    ]);
  });
});
