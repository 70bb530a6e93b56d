// The policy model: path normalisation (bypass attempts), validation, and the compiled check, tested by table
// and against a plain reading of the rules.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { normalizePath, normalizeTarget } from '../src/model/path.js';
import {
  compilePolicy,
  newPolicy,
  normalizePathPrefix,
  ruleKey,
  validatePolicyConfig,
  type AllowRule,
  type AuthzRequest,
  type PolicyConfig,
} from '../src/model/policy.js';

/**
 * The reference the compiled check is tested against: the rules read as written, one by one, no maps and no
 * precomputation. Allowed, with every reason that holds (the compiled check names one of them).
 */
function reference(config: PolicyConfig, r: AuthzRequest): { allowed: boolean; reasons: string[] } {
  const ns = r.namespace;
  const mine = config.policies.filter((p) => p.metadata.namespace === ns);
  if (!mine.length) return { allowed: true, reasons: ['no policy for the namespace'] };
  if (!mine.some((p) => p.spec.default === 'deny')) return { allowed: true, reasons: [`allowed by default in namespace ${ns}`] };
  const denied = { allowed: false, reasons: [`denied by default in namespace ${ns}: no rule allows it`] };
  if (!r.clientIdentity) return denied;
  const rules = mine.flatMap((p) => p.spec.rules.map((rule, i) => ({ rule, why: `allowed by rule ${i + 1} of policy ${ns}/${p.metadata.name}` })))
    .filter(({ rule }) => rule.to === '*' || rule.to === r.toService);
  const prefixOf = (rule: AllowRule) => (rule.pathPrefix === undefined || rule.pathPrefix === '/' ? undefined : rule.pathPrefix);
  // A TCP connection (path null) has no path: rules with a prefix never admit it, and it is never ambiguous.
  const path = r.path === null ? null : normalizePath(r.path);
  if (r.path !== null && path === null && rules.some(({ rule }) => prefixOf(rule) !== undefined)) {
    return { allowed: false, reasons: [`denied in namespace ${ns}: the request path is ambiguous or invalid`] };
  }
  const m = /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(r.clientIdentity);
  const client = m ? `${m[1]}/${m[2]}` : undefined;
  const fromMatches = (from: string) =>
    from === '*' || (from.startsWith('spiffe://') ? from === r.clientIdentity : client === (from.includes('/') ? from : `${ns}/${from}`));
  const admits = rules.filter(({ rule }) => {
    const prefix = prefixOf(rule);
    return fromMatches(rule.from) && (rule.port === undefined || rule.port === r.port) &&
      (prefix === undefined || (path !== null && (path === prefix || path.startsWith(`${prefix}/`))));
  });
  return admits.length ? { allowed: true, reasons: admits.map((a) => a.why) } : denied;
}

describe('normalizePath', () => {
  const cases: Array<[string, string | null]> = [
    ['/', '/'],
    ['/public/a', '/public/a'],
    ['/public/a?x=1', '/public/a'],
    ['/public/a#frag', '/public/a'],
    ['/public/', '/public/'],
    ['//secret', '/secret'],
    ['/public//a', '/public/a'],
    ['/admin/../secret', '/secret'],
    ['/public/../../../secret', '/secret'],
    ['/public/./a', '/public/a'],
    ['/public/.', '/public/'],
    ['/public/..', '/'],
    ['/public/a/..', '/public/'],
    ['/%73ecret', '/secret'],
    ['/%73%65%63%72%65%74', '/secret'],
    ['/public/%2e%2e/secret', '/secret'],
    ['/public/%2E%2E/secret', '/secret'],
    ['/public/.%2e/secret', '/secret'],
    ['/a%7eb', '/a~b'],
    ['/a%3ab', '/a%3Ab'],
    ['/a%2fb', '/a%2Fb'],
    ['/public/%252e%252e/secret', '/public/%252e%252e/secret'],
    ['/SECRET', '/SECRET'],
    ['/public./../secret', '/secret'],
    ['/secret.', '/secret.'],
    // Refused: encoded separators that would form dot segments, ambiguous or invalid input.
    ['/public/..%2Fsecret', null],
    ['/public/..%2fsecret', null],
    ['/public%2F..%2Fsecret', null],
    ['/public/%2e%2e%2fsecret', null],
    ['/public/..%5Csecret', null],
    ['/public/..;/secret', null],
    ['/public/.;x/secret', null],
    ['/public/.../secret', null],
    ['/public/..\\secret', null],
    ['/public\\..\\secret', null],
    ['/public/%00/../secret', null],
    ['/public/%zz', null],
    ['/public/%2', null],
    ['/public/a b', null],
    ['/public/\u00e9', null],
    ['/public/\t', null],
    ['secret', null],
    ['*', null],
    ['http://host/secret', null],
    ['', null],
  ];
  for (const [input, expected] of cases) {
    it(`normalises ${JSON.stringify(input)} to ${JSON.stringify(expected)}`, () => {
      assert.equal(normalizePath(input), expected);
    });
  }

  it('keeps the query when normalising a whole target', () => {
    assert.equal(normalizeTarget('/a/../b?x=/../y#f'), '/b?x=/../y');
    assert.equal(normalizeTarget('//b'), '/b');
    assert.equal(normalizeTarget('/a/..%2Fb?x'), null);
  });

  const pathChars = fc.constantFrom('/', '.', '%', '2', 'e', 'E', 'f', 'F', '5', 'c', 'C', 'a', 's', ';', '7', '3', '0', 'x', '\\');
  const paths = fc.array(pathChars, { maxLength: 24 }).map((cs) => `/${cs.join('')}`);

  it('is idempotent', () => {
    fc.assert(
      fc.property(paths, (p) => {
        const n = normalizePath(p);
        if (n !== null) assert.equal(normalizePath(n), n);
      }),
      { numRuns: 5000 },
    );
  });

  it('never leaves an empty, dot or ambiguous segment', () => {
    fc.assert(
      fc.property(paths, (p) => {
        const n = normalizePath(p);
        if (n === null || n === '/') return;
        const segs = n.slice(1, n.endsWith('/') ? -1 : undefined).split('/');
        for (const s of segs) {
          assert.notEqual(s, '');
          assert.notEqual(s, '.');
          assert.notEqual(s, '..');
          assert.ok(!/^\.+;/.test(s), s);
          assert.ok(!/%2[eE]|%7[eE]|%[a-f]/.test(s), `${s} holds an escape that should be decoded or upper-cased`);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('never lets a path an app resolves outside /public pass a /public prefix', () => {
    // What a lenient app does: decode every escape once (including %2F and '\'), then resolve dots.
    const appView = (p: string): string => {
      const decoded = p.split('?')[0]!.replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))).replace(/\\/g, '/');
      const out: string[] = [];
      for (const s of decoded.split('/')) {
        const base = s.split(';')[0];
        if (base === '..') out.pop();
        else if (base !== '.' && base !== '') out.push(s);
      }
      return `/${out.join('/')}`;
    };
    const policy = { policies: [newPolicy('shop', 'deny', [{ from: '*', to: 'api', pathPrefix: '/public' }])] };
    const compiled = compilePolicy(policy);
    fc.assert(
      fc.property(paths, (p) => {
        const d = compiled.check({ namespace: 'shop', toService: 'api', clientIdentity: 'spiffe://t/ns/shop/sa/web', path: `/public${p}` });
        if (!d.allowed) return;
        const seen = appView(normalizePath(`/public${p}`)!);
        assert.ok(seen === '/public' || seen.startsWith('/public/'), `/public${p} allowed but the app sees ${seen}`);
      }),
      { numRuns: 5000 },
    );
  });
});

describe('validatePolicyConfig', () => {
  const ok = (rules: AllowRule[] = [], def: 'allow' | 'deny' = 'deny') => ({ policies: [newPolicy('shop', def, rules)] });

  it('accepts and normalises a valid document', () => {
    const v = validatePolicyConfig(ok([{ from: 'web', to: 'api', port: 8080, pathPrefix: '/api/%761/' }]));
    assert.deepEqual(v.errors, []);
    assert.equal(v.value!.policies[0]!.spec.rules[0]!.pathPrefix, '/api/v1');
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['a non-object', 42, /must be an object/],
    ['policies not a list', { policies: {} }, /policies: must be a list/],
    ['a wrong apiVersion', { policies: [{ ...newPolicy('shop', 'deny'), apiVersion: 'v1' }] }, /apiVersion: must be mesh.io\/v1alpha1/],
    ['a bad default', { policies: [{ ...newPolicy('shop', 'deny'), spec: { default: 'maybe', rules: [] } }] }, /spec.default: must be allow or deny/],
    ['a bad from', ok([{ from: 'Web!', to: 'api' }]), /from: .*not a valid name/],
    ['a bad SPIFFE from', ok([{ from: 'spiffe://x/y', to: 'api' }]), /not a mesh SPIFFE identity/],
    ['a bad to', ok([{ from: 'web', to: 'API' }]), /to: .*not a valid name/],
    ['a bad port', ok([{ from: 'web', to: 'api', port: 70000 }]), /port: must be an integer from 1 to 65535/],
    ['a relative path prefix', ok([{ from: 'web', to: 'api', pathPrefix: 'api' }]), /must begin with '\/'/],
    ['an ambiguous path prefix', ok([{ from: 'web', to: 'api', pathPrefix: '/a/..%2Fb' }]), /not a valid path/],
    ['an unknown field', ok([{ from: 'web', to: 'api', methods: ['GET'] } as unknown as AllowRule]), /methods: unknown field/],
    ['a duplicate rule', ok([{ from: 'web', to: 'api' }, { from: 'web', to: 'api' }]), /same rule as rule 1/],
    ['two policies with one name', { policies: [newPolicy('shop', 'deny'), newPolicy('shop', 'allow')] }, /a second policy named shop\/default/],
  ];
  for (const [what, input, re] of bad) {
    it(`refuses ${what}`, () => {
      const v = validatePolicyConfig(input);
      assert.equal(v.value, undefined);
      assert.match(v.errors.join('\n'), re);
    });
  }

  it('makes compilePolicy throw on an invalid document', () => {
    assert.throws(() => compilePolicy({ policies: [{}] }), /invalid policies/);
  });
});

describe('compilePolicy', () => {
  const td = 'spiffe://mesh.local';
  const web = `${td}/ns/shop/sa/web`;
  const batch = `${td}/ns/jobs/sa/batch`;
  const policy: PolicyConfig = {
    policies: [
      newPolicy('shop', 'deny', [
        { from: 'web', to: 'api' },
        { from: 'jobs/batch', to: 'api', port: 8080, pathPrefix: '/public' },
        { from: `${td}/ns/shop/sa/admin`, to: '*' },
        { from: '*', to: 'status', pathPrefix: '/health' },
      ]),
      newPolicy('open', 'allow'),
    ],
  };
  const req = (r: Partial<AuthzRequest>): AuthzRequest => ({ namespace: 'shop', toService: 'api', clientIdentity: web, port: 8080, path: '/', ...r });
  const compiled = compilePolicy(policy);

  const cases: Array<[string, Partial<AuthzRequest>, boolean, RegExp]> = [
    ['a service-name rule admits that service', {}, true, /rule 1 of policy shop\/default/],
    ['a service-name rule admits no other service', { clientIdentity: `${td}/ns/shop/sa/cart` }, false, /denied by default/],
    ['a service name means the policy namespace only', { clientIdentity: `${td}/ns/other/sa/web` }, false, /denied/],
    ['a rule for one service admits nothing to another', { toService: 'db' }, false, /denied/],
    ['a namespace/service rule admits that service on its port and path', { clientIdentity: batch, path: '/public/x?y=1' }, true, /rule 2/],
    ['the prefix is segment-wise', { clientIdentity: batch, path: '/publicity' }, false, /denied/],
    ['the prefix itself matches', { clientIdentity: batch, path: '/public' }, true, /rule 2/],
    ['the port must match', { clientIdentity: batch, path: '/public/x', port: 9090 }, false, /denied/],
    ['a port rule needs a port', { clientIdentity: batch, path: '/public/x', port: undefined }, false, /denied/],
    ['an identity rule to * admits every service', { clientIdentity: `${td}/ns/shop/sa/admin`, toService: 'db' }, true, /rule 3/],
    ['a * client rule admits any identity', { clientIdentity: batch, toService: 'status', path: '/health' }, true, /rule 4/],
    ['a * client rule needs an identity', { clientIdentity: null, toService: 'status', path: '/health' }, false, /denied/],
    ['an unauthenticated client gets the default', { clientIdentity: null }, false, /denied by default/],
    ['a default-allow namespace admits anyone', { namespace: 'open', clientIdentity: null }, true, /allowed by default in namespace open/],
    ['a namespace without policy admits anyone', { namespace: 'free' }, true, /no policy/],
  ];
  for (const [what, r, allowed, reason] of cases) {
    it(`${what}`, () => {
      const d = compiled.check(req(r));
      assert.equal(d.allowed, allowed, d.reason);
      assert.match(d.reason, reason);
    });
  }

  const bypasses = [
    '/admin/../secret',
    '//secret',
    '/%73ecret',
    '/SECRET',
    '/Public/x',
    '/public/../secret',
    '/public/..%2Fsecret',
    '/public%2F..%2Fsecret',
    '/public/%2e%2e/secret',
    '/public/%2e%2e%2fsecret',
    '/public/..;/secret',
    '/public/...',
    '/public/.../secret',
    '/public./secret',
    '/public../secret',
    '/public/..',
    '/public\\..\\secret',
    '/public/%00/../../secret',
    '/public%00/x',
    '/publicsecret',
    'public/x',
    'http://api/public/x',
  ];
  for (const path of bypasses) {
    it(`keeps the /public rule from admitting ${JSON.stringify(path)}`, () => {
      const d = compiled.check(req({ clientIdentity: batch, path }));
      assert.equal(d.allowed, false, `${path}: ${d.reason}`);
    });
  }

  it('admits what the /public rule is for, however it is spelled', () => {
    for (const path of ['/public', '/public/', '/public/a/b', '//public//a', '/%70ublic/a', '/public/./a', '/x/../public/a', '/public/a%2Fb']) {
      assert.equal(compiled.check(req({ clientIdentity: batch, path })).allowed, true, path);
    }
  });

  it('merges several policies in a namespace: rules add up and deny wins', () => {
    const merged: PolicyConfig = { policies: [newPolicy('shop', 'allow', [{ from: 'web', to: 'api' }], 'a'), newPolicy('shop', 'deny', [], 'b')] };
    assert.equal(compilePolicy(merged).check(req({})).allowed, true);
    assert.equal(compilePolicy(merged).check(req({ clientIdentity: batch })).allowed, false);
  });

  it('allows everything when nothing is stored', () => {
    assert.equal(compilePolicy(null).check(req({ clientIdentity: null })).allowed, true);
    assert.equal(compilePolicy(undefined).check(req({ clientIdentity: null })).allowed, true);
  });

  it('returns the same precomputed decision objects (no per-request allocation of reasons)', () => {
    const c = compilePolicy(policy);
    assert.equal(c.check(req({})), c.check(req({ path: '/other' })));
    assert.equal(c.check(req({ toService: 'db' })), c.check(req({ toService: 'cart' })));
  });

  it('decides as the rules read one by one, for any document and request', () => {
    const td = 'spiffe://mesh.local';
    const rule = fc.record({
      from: fc.constantFrom('*', 'web', 'jobs/batch', 'shop/cart', `${td}/ns/shop/sa/admin`, 'spiffe://other.td/ns/shop/sa/web'),
      to: fc.constantFrom('*', 'api', 'db', 'status'),
      port: fc.option(fc.constantFrom(8080, 9090), { nil: undefined }),
      pathPrefix: fc.option(fc.constantFrom('/', '/public', '/public/a', '/health/', '/%70ublic'), { nil: undefined }),
    }, { requiredKeys: ['from', 'to'] });
    const doc = fc.array(fc.record({
      namespace: fc.constantFrom('shop', 'jobs'),
      def: fc.constantFrom<'allow' | 'deny'>('allow', 'deny'),
      rules: fc.uniqueArray(rule, { maxLength: 5, selector: (r) => ruleKey({ ...r, pathPrefix: r.pathPrefix && normalizePathPrefix(r.pathPrefix) }) }),
    }), { maxLength: 4 }).map((ps): PolicyConfig => ({ policies: ps.map((p, i) => newPolicy(p.namespace, p.def, p.rules as AllowRule[], `p${i}`)) }));
    const request = fc.record({
      namespace: fc.constantFrom('shop', 'jobs', 'free'),
      toService: fc.constantFrom('api', 'db', 'status'),
      clientIdentity: fc.constantFrom(null, `${td}/ns/shop/sa/web`, `${td}/ns/jobs/sa/batch`, `${td}/ns/shop/sa/admin`, `${td}/ns/shop/sa/cart`, 'spiffe://other.td/ns/shop/sa/web', 'not-an-id'),
      port: fc.option(fc.constantFrom(8080, 9090), { nil: undefined }),
      path: fc.constantFrom('/', '/public', '/public/a/b', '/publicity', '/public/../secret', '/%70ublic/a', '/health', '/health/x', '//public//a', '/public%2Fa', '/x?y=1', null),
    });
    fc.assert(fc.property(doc, fc.array(request, { minLength: 1, maxLength: 8 }), (d, reqs) => {
      const v = validatePolicyConfig(d);
      assert.ok(v.value, v.errors.join('; '));
      const c = compilePolicy(v.value);
      for (const r of reqs) {
        const want = reference(v.value, r);
        const got = c.check(r);
        assert.equal(got.allowed, want.allowed, `${JSON.stringify(r)}: ${got.reason}`);
        assert.ok(want.reasons.includes(got.reason), `${JSON.stringify(r)}: ${got.reason} is not one of ${want.reasons.join(' | ')}`);
      }
    }), { numRuns: 500 });
  });
});
