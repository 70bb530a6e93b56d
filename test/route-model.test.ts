// The route model without I/O: validation, the CLI's specs, YAML documents, renderings (golden
// files: UPDATE_GOLDEN=1 regenerates them) and the laws parse(render(x)) == x and weights → split.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  checkRouteConfig, durationMs, formatDuration, percentages, validateRoute, validateRouteConfig, withRoute,
  ROUTE_API_VERSION, RETRY_ON, type Backend, type Match, type Route, type Rule,
} from '../src/model/route.js';
import {
  formatMatch, parseBackends, parseFaultAbort, parseFaultAbortGrpc, parseFaultDelay, parseMatch, parseRetries, parseRouteDocuments,
  ruleFromCli, setRule,
} from '../src/model/route-parse.js';
import { formatSplit, listRows, LIST_HEAD, routeNotes, routeRows, routesJson, routesYaml, ROUTE_HEAD } from '../src/model/route-render.js';
import { versionAtLeast, propagation } from '../src/control/propagation.js';
import { table } from '../src/ui/table.js';
import { ROOT } from './support/mesh.js';
import { MeshError } from '../src/util/errors.js';

function golden(name: string, actual: string): void {
  const path = join(ROOT, 'test', 'golden', name);
  if (process.env.UPDATE_GOLDEN === '1') {
    mkdirSync(join(ROOT, 'test', 'golden'), { recursive: true });
    writeFileSync(path, actual);
    return;
  }
  assert.ok(existsSync(path), `test/golden/${name} is missing: run with UPDATE_GOLDEN=1 to create it`);
  assert.equal(actual, readFileSync(path, 'utf8'), `output differs from test/golden/${name} (UPDATE_GOLDEN=1 regenerates it)`);
}

const route = (rules: unknown[], extra: Record<string, unknown> = {}): unknown => ({
  apiVersion: ROUTE_API_VERSION, kind: 'Route', metadata: { name: 'reviews', namespace: 'default' }, spec: { rules, ...extra },
});
const split = (...b: [string, number][]) => b.map(([version, weight]) => ({ version, weight }));
const known = new Map([['default/reviews', ['v1', 'v2', 'v3']], ['default/ratings', ['v1']]]);

/** The bookinfo walk-through's route: jason to v3, everyone else 80/20 with a timeout. */
const BOOKINFO: Route = {
  apiVersion: ROUTE_API_VERSION,
  kind: 'Route',
  metadata: { name: 'reviews', namespace: 'default' },
  spec: {
    rules: [
      { matches: [{ headers: [{ name: 'end-user', exact: 'jason' }] }], backends: split(['v3', 100]) },
      { matches: [{ headers: [{ name: 'end-user', regex: '^ja.*' }], pathPrefix: '/api', method: 'GET' }, { method: 'DELETE' }], backends: split(['v2', 1]), fault: { abort: { status: 503, percent: 5 } } },
      { backends: split(['v1', 80], ['v2', 20]), timeout: '500ms', retries: { attempts: 3, retryOn: ['5xx'] }, fault: { delay: { duration: '2s', percent: 10 } } },
    ],
    retryBudget: { retryRatio: 0.2, minRetriesPerSecond: 10 },
    failureAccrual: { consecutiveFailures: 7 },
  },
};

describe('route validation', () => {
  const rows: { name: string; input: unknown; errors: RegExp[]; warnings?: RegExp[] }[] = [
    { name: 'accepts a plain split', input: route([{ backends: split(['v1', 80], ['v2', 20]) }]), errors: [] },
    { name: 'accepts the bookinfo route', input: BOOKINFO, errors: [] },
    { name: 'refuses an unknown service and lists the known ones', input: { ...(route([{ backends: split(['v1', 1]) }]) as object), metadata: { name: 'reveiws' } }, errors: [/service reveiws has no live endpoint in namespace default \(known: ratings, reviews\)/] },
    { name: 'refuses a service of an empty namespace', input: { ...(route([{ backends: split(['v1', 1]) }]) as object), metadata: { name: 'reviews', namespace: 'prod' } }, errors: [/no services run there/] },
    { name: 'warns about a version without a live endpoint, listing the live ones', input: route([{ backends: split(['v1', 50], ['v4', 50]) }]), errors: [], warnings: [/version v4 of reviews has no live endpoint \(live: v1, v2, v3\)/] },
    { name: 'does not warn about an idle version with weight 0', input: route([{ backends: split(['v1', 1], ['v4', 0]) }]), errors: [], warnings: [] },
    { name: 'refuses fractional weights', input: route([{ backends: split(['v1', 1.5]) }]), errors: [/backends\[0\]\.weight: must be an integer ≥ 0 \(got 1.5\)/] },
    { name: 'refuses negative weights', input: route([{ backends: split(['v1', -1], ['v2', 2]) }]), errors: [/weight: must be an integer ≥ 0/] },
    { name: 'refuses weights that are all zero', input: route([{ backends: split(['v1', 0], ['v2', 0]) }]), errors: [/weights are all zero/] },
    { name: 'refuses a version named twice', input: route([{ backends: split(['v1', 1], ['v1', 2]) }]), errors: [/version v1 is named twice/] },
    { name: 'refuses a rule without backends', input: route([{ backends: [] }]), errors: [/must name at least one version/] },
    { name: 'refuses a bad version name', input: route([{ backends: split(['V_1', 1]) }]), errors: [/version 'V_1' is not a valid name/] },
    { name: 'refuses a header match without a value', input: route([{ matches: [{ headers: [{ name: 'end-user' }] }], backends: split(['v3', 1]) }]), errors: [/header end-user needs exactly one of exact or regex/] },
    { name: 'refuses a header match with both exact and regex', input: route([{ matches: [{ headers: [{ name: 'a', exact: 'x', regex: 'y' }] }], backends: split(['v3', 1]) }]), errors: [/exactly one of exact or regex/] },
    { name: 'refuses a bad regex', input: route([{ matches: [{ headers: [{ name: 'end-user', regex: '(ja' }] }], backends: split(['v3', 1]) }]), errors: [/'\(ja' is not a valid regular expression/] },
    { name: 'refuses the same header twice in one match', input: route([{ matches: [{ headers: [{ name: 'a', exact: '1' }, { name: 'A', exact: '2' }] }], backends: split(['v3', 1]) }]), errors: [/header a is named twice in one match/] },
    { name: 'refuses an empty match', input: route([{ matches: [{}], backends: split(['v3', 1]) }]), errors: [/a match needs at least one of/] },
    { name: 'refuses an empty list of matches', input: route([{ matches: [], backends: split(['v3', 1]) }]), errors: [/leave matches out for the default rule/] },
    { name: 'refuses a path prefix without a slash', input: route([{ matches: [{ pathPrefix: 'api' }], backends: split(['v3', 1]) }]), errors: [/'api' must start with \//] },
    { name: 'refuses a default rule that is not last', input: route([{ backends: split(['v1', 1]) }, { matches: [{ method: 'GET' }], backends: split(['v2', 1]) }]), errors: [/default rule \(no matches\) but not the last one/] },
    { name: 'refuses two rules with the same matches', input: route([{ matches: [{ method: 'GET' }], backends: split(['v1', 1]) }, { matches: [{ method: 'get' }], backends: split(['v2', 1]) }]), errors: [/same matches as rule 1/] },
    { name: 'refuses a route without rules', input: route([]), errors: [/at least one rule/] },
    { name: 'refuses a bad duration', input: route([{ backends: split(['v1', 1]), timeout: '5x' }]), errors: [/timeout: '5x' is not a duration/] },
    { name: 'refuses a timeout given as a bare number', input: route([{ backends: split(['v1', 1]), timeout: 500 }]), errors: [/timeout: 500 is not a duration/] },
    { name: 'refuses a zero timeout', input: route([{ backends: split(['v1', 1]), timeout: '0s' }]), errors: [/is not a duration/] },
    { name: 'refuses too many retries', input: route([{ backends: split(['v1', 1]), retries: { attempts: 11 } }]), errors: [/attempts: must be an integer from 1 to 10/] },
    { name: 'refuses an unknown retry condition', input: route([{ backends: split(['v1', 1]), retries: { attempts: 1, retryOn: ['timeout'] } }]), errors: [/'timeout' is not one of connect-failure, 5xx/] },
    { name: 'refuses a fault percentage over 100', input: route([{ backends: split(['v1', 1]), fault: { delay: { duration: '1s', percent: 101 } } }]), errors: [/percent: must be a number from 0 to 100/] },
    { name: 'refuses an abort status that is not an error', input: route([{ backends: split(['v1', 1]), fault: { abort: { status: 200, percent: 1 } } }]), errors: [/status: must be an integer from 400 to 599/] },
    { name: 'refuses an abort with both an HTTP and a gRPC status', input: route([{ backends: split(['v1', 1]), fault: { abort: { status: 503, grpcStatus: 14, percent: 1 } } }]), errors: [/needs exactly one of status \(HTTP, 400-599\) or grpcStatus \(1-16\)/] },
    { name: 'refuses a gRPC abort outside 1-16', input: route([{ backends: split(['v1', 1]), fault: { abort: { grpcStatus: 0, percent: 1 } } }]), errors: [/grpcStatus: must be an integer from 1 to 16/] },
    { name: 'refuses an empty fault', input: route([{ backends: split(['v1', 1]), fault: {} }]), errors: [/needs a delay or an abort/] },
    { name: 'refuses unknown fields, naming the known ones', input: route([{ backend: split(['v1', 1]), backends: split(['v1', 1]) }]), errors: [/rules\[0\]\.backend: unknown field \(known: matches, backends, timeout, retries, fault\)/] },
    { name: 'refuses another apiVersion', input: { ...(route([{ backends: split(['v1', 1]) }]) as object), apiVersion: 'networking.istio.io/v1' }, errors: [/apiVersion: must be mesh.io\/v1alpha1/] },
    { name: 'refuses a retry ratio over 1', input: route([{ backends: split(['v1', 1]) }], { retryBudget: { retryRatio: 2, minRetriesPerSecond: 1 } }), errors: [/retryRatio: must be a number from 0 to 1/] },
    { name: 'lists every error, not only the first', input: route([{ backends: split(['v1', 1.5]), timeout: 'soon' }]), errors: [/weight/, /timeout/] },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const v = validateRoute(row.input, known);
      assert.equal(v.errors.length, row.errors.length, `errors: ${v.errors.join(' | ')}`);
      row.errors.forEach((re, i) => assert.match(v.errors[i]!, re));
      if (row.warnings) {
        assert.equal(v.warnings.length, row.warnings.length, `warnings: ${v.warnings.join(' | ')}`);
        row.warnings.forEach((re, i) => assert.match(v.warnings[i]!, re));
      }
      assert.equal(v.value === undefined, row.errors.length > 0);
    });
  }

  it('normalises header names, methods and durations', () => {
    const v = validateRoute(route([{ matches: [{ headers: [{ name: 'End-User', exact: 'Jason' }], method: 'get' }], backends: split(['v1', 1]), timeout: '120s' }]));
    const r = v.value!.spec.rules[0]!;
    assert.deepEqual(r.matches, [{ headers: [{ name: 'end-user', exact: 'Jason' }], method: 'GET' }]);
    assert.equal(r.timeout, '2m');
  });

  it('defaults the namespace to default', () => {
    const v = validateRoute({ apiVersion: ROUTE_API_VERSION, kind: 'Route', metadata: { name: 'reviews' }, spec: { rules: [{ backends: split(['v1', 1]) }] } });
    assert.equal(v.value!.metadata.namespace, 'default');
  });

  it('checks the stored document: one route per service, sorted', () => {
    const a = validateRoute(route([{ backends: split(['v1', 1]) }])).value!;
    const b = { ...a, metadata: { name: 'details', namespace: 'default' } };
    assert.deepEqual(checkRouteConfig({ routes: [a, b] }).routes.map((r) => r.metadata.name), ['details', 'reviews']);
    assert.match(validateRouteConfig({ routes: [a, a] }).errors[0]!, /a second route for default\/reviews/);
    assert.throws(() => checkRouteConfig({ routes: {} }), /invalid routes: routes: must be a list/);
    assert.throws(() => checkRouteConfig({ routes: [{ ...a, spec: { rules: [] } }] }), /routes\[0\]\.spec\.rules/);
  });

  it('reads durations as Go does and prints them in one canonical spelling', () => {
    const rows: [string, number | undefined, string?][] = [
      ['500ms', 500, '500ms'], ['2s', 2000, '2s'], ['1.5s', 1500, '1500ms'], ['90s', 90_000, '90s'], ['120s', 120_000, '2m'],
      ['1m30s', 90_000, '90s'], ['1h', 3_600_000, '1h'], ['5', undefined], ['s', undefined], ['-1s', undefined], ['1 s', undefined], ['1d', undefined],
    ];
    for (const [text, ms, canon] of rows) {
      assert.equal(durationMs(text), ms, text);
      if (canon) assert.equal(formatDuration(ms!), canon, text);
    }
  });
});

describe('the CLI specs', () => {
  it('reads weighted versions, and versions alone as an even split', () => {
    const rows: { input: string[]; expected: Backend[] }[] = [
      { input: ['v1=80', 'v2=20'], expected: split(['v1', 80], ['v2', 20]) },
      { input: ['v1=80,v2=20'], expected: split(['v1', 80], ['v2', 20]) },
      { input: ['v2'], expected: split(['v2', 100]) },
      { input: ['v1', 'v2', 'v3'], expected: split(['v1', 1], ['v2', 1], ['v3', 1]) },
      { input: ['v1=0', 'v2=1'], expected: split(['v1', 0], ['v2', 1]) },
    ];
    for (const r of rows) assert.deepEqual(parseBackends(r.input), r.expected, r.input.join(' '));
  });

  it('refuses bad versions with a hint', () => {
    const rows: { input: string[]; error: RegExp }[] = [
      { input: [], error: /no versions given/ },
      { input: ['v1=80', 'v2'], error: /some versions have weights and some do not/ },
      { input: ['v1=0', 'v2=0'], error: /weights are all zero/ },
      { input: ['v1=1.5'], error: /weight '1.5' of v1 is not an integer/ },
      { input: ['v1=-3'], error: /weight '-3' of v1/ },
      { input: ['v1='], error: /weight '' of v1/ },
      { input: ['v1=1', 'v1=2'], error: /version v1 is named twice/ },
      { input: ['V1'], error: /version 'V1' is not a valid name/ },
    ];
    for (const r of rows) {
      assert.throws(() => parseBackends(r.input), (e: Error) => e instanceof MeshError && r.error.test(e.message) && !!e.hint, r.input.join(' '));
    }
  });

  it('reads matches: header exact and regex, path, method, ANDed with commas', () => {
    const rows: { input: string; expected: Match }[] = [
      { input: 'header:end-user=jason', expected: { headers: [{ name: 'end-user', exact: 'jason' }] } },
      { input: 'header:End-User~^ja.*', expected: { headers: [{ name: 'end-user', regex: '^ja.*' }] } },
      { input: 'path:/api', expected: { pathPrefix: '/api' } },
      { input: 'method:get', expected: { method: 'GET' } },
      { input: 'header:a=1,path:/x,method:POST', expected: { headers: [{ name: 'a', exact: '1' }], pathPrefix: '/x', method: 'POST' } },
      { input: 'header:x~a{1,3}', expected: { headers: [{ name: 'x', regex: 'a{1,3}' }] } },
      { input: 'header:x=a,b,header:y=c=d', expected: { headers: [{ name: 'x', exact: 'a,b' }, { name: 'y', exact: 'c=d' }] } },
      { input: 'header:x=', expected: { headers: [{ name: 'x', exact: '' }] } },
    ];
    for (const r of rows) assert.deepEqual(parseMatch(r.input), r.expected, r.input);
  });

  it('refuses malformed matches with a hint', () => {
    const rows: { input: string; error: RegExp }[] = [
      { input: 'header:end-user', error: /'header:end-user' needs a value/ },
      { input: 'header:=x', error: /names no header/ },
      { input: 'header:x~(', error: /'\(' is not a valid regular expression/ },
      { input: 'header:a=1,header:a=2', error: /header a is named twice/ },
      { input: 'path:api', error: /path 'api' must start with \// },
      { input: 'method:G3T', error: /'G3T' is not an HTTP method/ },
      { input: 'cookie:a=b', error: /'cookie:a=b' is not a match/ },
      { input: 'end-user=jason', error: /is not a match/ },
    ];
    for (const r of rows) assert.throws(() => parseMatch(r.input), (e: Error) => e instanceof MeshError && r.error.test(e.message) && !!e.hint, r.input);
  });

  it('reads faults and retries', () => {
    assert.deepEqual(parseFaultDelay('2s@10%'), { duration: '2s', percent: 10 });
    assert.deepEqual(parseFaultDelay('1500ms'), { duration: '1500ms', percent: 100 });
    assert.deepEqual(parseFaultAbort('503@5%'), { status: 503, percent: 5 });
    assert.deepEqual(parseFaultAbort('500@0.5'), { status: 500, percent: 0.5 });
    assert.deepEqual(parseRetries('3'), { attempts: 3 });
    assert.deepEqual(parseRetries('2', '5xx,connect-failure'), { attempts: 2, retryOn: ['connect-failure', '5xx'] });
    for (const bad of ['2x@10%', '2s@110%', '2s@ten', '2s@1@2']) assert.throws(() => parseFaultDelay(bad), MeshError, bad);
    for (const bad of ['200@5%', '5033@5%', 'x@5%', '503@-1']) assert.throws(() => parseFaultAbort(bad), MeshError, bad);
    for (const bad of ['0', '11', 'three']) assert.throws(() => parseRetries(bad), MeshError, bad);
    assert.throws(() => parseRetries('1', 'timeouts'), /cannot retry on 'timeouts'/);
    assert.deepEqual(parseRetries('2', 'unavailable,5xx,resource-exhausted'), { attempts: 2, retryOn: ['5xx', 'resource-exhausted', 'unavailable'] });
    assert.deepEqual(parseFaultAbortGrpc('14@5%'), { grpcStatus: 14, percent: 5 });
    assert.deepEqual(parseFaultAbortGrpc('RESOURCE_EXHAUSTED'), { grpcStatus: 8, percent: 100 });
    assert.deepEqual(parseFaultAbortGrpc('unavailable@50'), { grpcStatus: 14, percent: 50 });
    for (const bad of ['0@5%', '17', 'ok', 'nosuch@5%', '14@5%@1', '14@200%']) assert.throws(() => parseFaultAbortGrpc(bad), MeshError, bad);
    assert.throws(() => ruleFromCli(['v1'], { faultAbort: '503', faultAbortGrpc: '14' }), /--fault-abort and --fault-abort-grpc both given/);
    const v = validateRoute(route([{ backends: split(['v1', 1]), retries: { attempts: 1, retryOn: ['unavailable', 'cancelled'] }, fault: { abort: { grpcStatus: 14, percent: 10 } } }]));
    assert.deepEqual(v.value?.spec.rules[0]?.retries, { attempts: 1, retryOn: ['cancelled', 'unavailable'] });
    assert.deepEqual(v.value?.spec.rules[0]?.fault, { abort: { grpcStatus: 14, percent: 10 } });
    assert.throws(() => ruleFromCli(['v1'], { retryOn: '5xx' }), /--retry-on needs --retries/);
    assert.throws(() => ruleFromCli(['v1'], { timeout: '500' }), /timeout '500' is not a duration/);
  });

  it('sets the default rule, puts match rules ahead of it, and replaces a rule with the same match', () => {
    let r = setRule(undefined, 'default', 'reviews', ruleFromCli(['v1=80', 'v2=20'], {}));
    r = setRule(r, 'default', 'reviews', ruleFromCli(['v3'], { match: ['header:end-user=jason'] }));
    r = setRule(r, 'default', 'reviews', ruleFromCli(['v2'], { match: ['path:/api'] }));
    assert.deepEqual(r.spec.rules.map((x) => x.backends.map((b) => b.version).join('+')), ['v3', 'v2', 'v1+v2']);
    r = setRule(r, 'default', 'reviews', ruleFromCli(['v1'], { match: ['header:End-User=jason'], timeout: '1s' }));
    assert.deepEqual(r.spec.rules.map((x) => x.backends.map((b) => b.version).join('+')), ['v1', 'v2', 'v1+v2']);
    assert.equal(r.spec.rules[0]!.timeout, '1s');
    r = setRule(r, 'default', 'reviews', ruleFromCli(['v2'], {}));
    assert.deepEqual(r.spec.rules.map((x) => x.backends.map((b) => b.version).join('+')), ['v1', 'v2', 'v2']);
    assert.deepEqual(validateRoute(r, known).errors, []);
  });

  it('reads YAML and JSON documents: several, a RouteList, or the stored form', () => {
    const one = routesYaml([BOOKINFO]);
    assert.deepEqual(parseRouteDocuments(one), [BOOKINFO]);
    assert.equal(parseRouteDocuments(`${one}---\n${one}`).length, 2);
    assert.deepEqual(parseRouteDocuments(routesJson([BOOKINFO, BOOKINFO])), [BOOKINFO, BOOKINFO]);
    assert.deepEqual(parseRouteDocuments(JSON.stringify({ routes: [BOOKINFO] })), [BOOKINFO]);
    assert.throws(() => parseRouteDocuments('apiVersion: x\n  kind: [1\n', 'r.yaml'), (e: Error) => /^r\.yaml:\d+:\d+: /.test(e.message));
    assert.throws(() => parseRouteDocuments('a: 1\na: 2\n'), /unique|duplicate/i);
    assert.throws(() => parseRouteDocuments('\n# nothing\n', 'empty.yaml'), /empty\.yaml holds no route/);
  });

  it('reads versions that look like numbers as strings', () => {
    const r: Route = { ...BOOKINFO, spec: { rules: [{ backends: split(['1', 1], ['2', 1]) }] } };
    assert.deepEqual(parseRouteDocuments(routesYaml([r])), [r]);
  });
});

describe('rendering', () => {
  it('prints a route as a table of its rules (golden)', () => {
    golden('route-get.txt', [table(ROUTE_HEAD, routeRows(BOOKINFO)), ...routeNotes(BOOKINFO)].join('\n') + '\n');
  });
  it('prints routes as a list (golden)', () => {
    const ratings: Route = { ...BOOKINFO, metadata: { name: 'ratings', namespace: 'prod' }, spec: { rules: [{ matches: [{ method: 'GET' }], backends: split(['v1', 1], ['v2', 2]) }] } };
    golden('route-list.txt', table(['NAMESPACE', ...LIST_HEAD], listRows([ratings, BOOKINFO], true)) + '\n');
  });
  it('prints a route as YAML (golden)', () => {
    golden('route.yaml', routesYaml([BOOKINFO]));
  });
  it('shows shares in percent, with a decimal only when needed', () => {
    assert.equal(formatSplit(split(['v1', 80], ['v2', 20])), 'v1 80%, v2 20%');
    assert.equal(formatSplit(split(['v1', 1], ['v2', 1], ['v3', 1])), 'v1 33.4%, v2 33.3%, v3 33.3%');
    assert.equal(formatSplit(split(['v1', 0], ['v2', 5])), 'v1 0%, v2 100%');
  });
});

// Generators for the property tests: any valid route, in normalised form.
const name = fc.stringMatching(/^[a-z]([a-z0-9-]{0,8}[a-z0-9])?$/);
const headerName = fc.stringMatching(/^[a-z0-9][a-z0-9_.-]{0,10}$/);
const value = fc.string({ maxLength: 12 }).filter((s) => !/(header|path|method):/.test(s));
const header = fc.oneof(
  fc.record({ name: headerName, exact: value }),
  fc.record({ name: headerName, regex: fc.constantFrom('^ja.*', 'a{1,3}', '(x|y)$', '\\d+', '') }),
);
const matchArb: fc.Arbitrary<Match> = fc
  .record({
    headers: fc.uniqueArray(header, { minLength: 1, maxLength: 3, selector: (h) => h.name }),
    pathPrefix: fc.stringMatching(/^\/[a-z0-9/_-]{0,10}$/),
    method: fc.constantFrom('GET', 'POST', 'DELETE'),
  }, { requiredKeys: [] })
  .filter((m) => Object.keys(m).length > 0);
const backends = fc
  .uniqueArray(fc.record({ version: name, weight: fc.integer({ min: 0, max: 1000 }) }), { minLength: 1, maxLength: 5, selector: (b) => b.version })
  .filter((bs) => bs.some((b) => b.weight > 0));
const duration = fc.integer({ min: 1, max: 7_200_000 }).map(formatDuration);
const ruleArb = (withMatches: boolean): fc.Arbitrary<Rule> =>
  fc.record({
    ...(withMatches ? { matches: fc.array(matchArb, { minLength: 1, maxLength: 3 }) } : {}),
    backends,
    timeout: duration,
    // Any non-empty set of conditions, in any order: validation stores them in one order.
    retries: fc.record({ attempts: fc.integer({ min: 1, max: 10 }), retryOn: fc.shuffledSubarray([...RETRY_ON], { minLength: 1 }) }, { requiredKeys: ['attempts'] }),
    fault: fc.record({
      delay: fc.record({ duration, percent: fc.integer({ min: 0, max: 1000 }).map((x) => x / 10) }),
      abort: fc.oneof(
        fc.record({ status: fc.integer({ min: 400, max: 599 }), percent: fc.integer({ min: 0, max: 100 }) }),
        fc.record({ grpcStatus: fc.integer({ min: 1, max: 16 }), percent: fc.integer({ min: 0, max: 100 }) }),
      ),
    }, { requiredKeys: ['delay'] }),
  }, { requiredKeys: withMatches ? ['matches', 'backends'] : ['backends'] }) as fc.Arbitrary<Rule>;
const routeArb: fc.Arbitrary<Route> = fc
  .tuple(name, name, fc.array(ruleArb(true), { maxLength: 3 }), fc.option(ruleArb(false), { nil: undefined }))
  .filter(([, , m, d]) => m.length + (d ? 1 : 0) > 0)
  .map(([svc, ns, m, d]) => {
    // Through validation once: the normalised form is what is stored, rendered and parsed back.
    const v = validateRoute({ apiVersion: ROUTE_API_VERSION, kind: 'Route', metadata: { name: svc, namespace: ns }, spec: { rules: d ? [...m, d] : m } });
    return v.value;
  })
  .filter((r): r is Route => r !== undefined);

describe('route laws (property tests)', () => {
  it('YAML: parse(render(route)) == route, and it validates unchanged', () => {
    fc.assert(fc.property(routeArb, (r) => {
      const [back] = parseRouteDocuments(routesYaml([r]));
      assert.deepEqual(back, r);
      assert.deepEqual(validateRoute(back).value, r);
    }), { numRuns: 300 });
  });

  it('JSON: parse(render(routes)) == routes', () => {
    fc.assert(fc.property(fc.array(routeArb, { minLength: 1, maxLength: 3 }), (rs) => {
      assert.deepEqual(parseRouteDocuments(routesJson(rs)), rs);
    }), { numRuns: 100 });
  });

  it('match specs: parseMatch(formatMatch(m)) == m', () => {
    fc.assert(fc.property(matchArb, (m) => {
      assert.deepEqual(parseMatch(formatMatch(m)), validateRoute(route([{ matches: [m], backends: split(['v1', 1]) }])).value!.spec.rules[0]!.matches![0]);
    }), { numRuns: 300 });
  });

  it('validation is idempotent', () => {
    fc.assert(fc.property(routeArb, (r) => assert.deepEqual(validateRoute(validateRoute(r).value).value, r)), { numRuns: 200 });
  });

  it('weights normalise to the split: shares sum to 100 and each is within rounding of weight/total', () => {
    fc.assert(fc.property(backends, fc.integer({ min: 0, max: 2 }), (bs, decimals) => {
      const shares = percentages(bs, decimals);
      const total = bs.reduce((s, b) => s + b.weight, 0);
      const unit = 10 ** -decimals;
      assert.ok(Math.abs(shares.reduce((s, x) => s + x, 0) - 100) < 1e-9);
      bs.forEach((b, i) => {
        assert.ok(Math.abs(shares[i]! - (100 * b.weight) / total) < unit + 1e-9, `${shares[i]} vs ${(100 * b.weight) / total}`);
        if (b.weight === 0) assert.equal(shares[i], 0);
      });
    }), { numRuns: 500 });
  });

  it('CLI weights are the split they describe', () => {
    fc.assert(fc.property(backends, (bs) => {
      assert.deepEqual(parseBackends(bs.map((b) => `${b.version}=${b.weight}`)), bs.map((b) => ({ version: b.version, weight: b.weight })));
    }), { numRuns: 200 });
  });

  it('the stored document keeps one route per service, whatever is set and cleared', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.boolean()), { maxLength: 12 }), (ops) => {
      let cfg: unknown = undefined;
      const expect = new Set<string>();
      for (const [svc, set] of ops) {
        cfg = withRoute(cfg, 'default', svc, set ? setRule(undefined, 'default', svc, ruleFromCli(['v1'], {})) : undefined);
        if (set) expect.add(svc);
        else expect.delete(svc);
      }
      const names = checkRouteConfig(cfg ?? { routes: [] }).routes.map((r) => r.metadata.name);
      assert.deepEqual(names, [...expect].sort());
    }), { numRuns: 200 });
  });
});

describe('propagation', () => {
  it('compares snapshot versions by counter within an epoch, and a later epoch as later', () => {
    const rows: [string | undefined, string, boolean][] = [
      ['abc.5', 'abc.5', true], ['abc.6', 'abc.5', true], ['abc.10', 'abc.9', true], ['abc.4', 'abc.5', false],
      ['abd.1', 'abc.5', true], ['abb.99', 'abc.5', false], [undefined, 'abc.5', false], ['0', 'abc.5', false],
    ];
    for (const [have, want, ok] of rows) assert.equal(versionAtLeast(have, want), ok, `${have} ≥ ${want}`);
  });
  it('splits proxies into up to date and lagging', () => {
    const p = propagation([{ instance: 'a', configVersion: 'x.3' }, { instance: 'b', configVersion: 'x.2' }, { instance: 'c' }], 'x.3');
    assert.deepEqual(p.upToDate.map((x) => x.instance), ['a']);
    assert.deepEqual(p.lagging.map((x) => x.instance), ['b', 'c']);
  });
});
