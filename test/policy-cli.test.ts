// mesh policy: pure edits of the policies document, and the command end to end against a real
// control plane (validation first, change second: a refused document changes nothing).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { TestMesh } from './support/mesh.js';
import { addRule, deleteRules, listRows, resetNamespace, ruleFromFlags, setDefault } from '../src/model/policy-edit.js';
import { MeshError } from '../src/util/errors.js';
import { validatePolicyConfig, type PolicyConfig } from '../src/model/policy.js';

describe('policy edits', () => {
  it('creates a namespace policy that still allows by default when a rule comes first', () => {
    const { config, added } = addRule(null, 'shop', { from: 'web', to: 'api' });
    assert.equal(added, true);
    assert.equal(config.policies[0]!.spec.default, 'allow');
    assert.deepEqual(validatePolicyConfig(config).errors, []);
  });

  it('sets the default without touching the rules, and never duplicates a rule', () => {
    let c: PolicyConfig = addRule(null, 'shop', { from: 'web', to: 'api' }).config;
    c = setDefault(c, 'shop', 'deny');
    assert.deepEqual(c.policies[0]!.spec, { default: 'deny', rules: [{ from: 'web', to: 'api' }] });
    assert.equal(addRule(c, 'shop', { from: 'web', to: 'api' }).added, false);
  });

  it('deletes by number and by fields, and says which rules are similar when none matches', () => {
    let c: PolicyConfig = setDefault(null, 'shop', 'deny');
    c = addRule(c, 'shop', { from: 'web', to: 'api' }).config;
    c = addRule(c, 'shop', { from: 'web', to: 'api', port: 8080 }).config;
    c = addRule(c, 'shop', { from: 'jobs/batch', to: 'api' }).config;
    assert.deepEqual(listRows(c).map((r) => r.slice(2, 6)), [['1', 'web', 'api', '*'], ['2', 'web', 'api', '8080'], ['3', 'jobs/batch', 'api', '*']]);
    const byIndex = deleteRules(c, 'shop', { index: 2 });
    assert.deepEqual(byIndex.removed.map((r) => r.rule), [{ from: 'web', to: 'api', port: 8080 }]);
    const byFields = deleteRules(c, 'shop', { rule: { from: 'jobs/batch', to: 'api' } });
    assert.equal(byFields.config.policies[0]!.spec.rules.length, 2);
    assert.throws(() => deleteRules(c, 'shop', { rule: { from: 'web', to: 'api', port: 9 } }), (e: MeshError) => /rules 1, 2 have other/.test(e.hint ?? ''));
    assert.throws(() => deleteRules(c, 'shop', { index: 7 }), /has no rule 7/);
    assert.deepEqual(resetNamespace(c, 'shop').policies, []);
  });

  const bad: Array<[Parameters<typeof ruleFromFlags>[0], RegExp]> = [
    [{ to: 'api' }, /--from is required/],
    [{ from: 'web' }, /--to is required/],
    [{ from: 'a/b/c', to: 'api' }, /--from: 'a\/b\/c' is not a client/],
    [{ from: 'web', to: 'Api' }, /--to: service name 'Api'/],
    [{ from: 'web', to: 'api', port: '0' }, /--port '0' is not a port number/],
    [{ from: 'web', to: 'api', pathPrefix: 'x' }, /--path-prefix: path prefix 'x' must begin with '\/'/],
    [{ from: 'web', to: 'api', pathPrefix: '/a/..%2f' }, /not a valid path/],
  ];
  for (const [flags, re] of bad) {
    it(`refuses ${JSON.stringify(flags)} with a one-line error`, () => {
      assert.throws(() => ruleFromFlags(flags), (e: Error) => e instanceof MeshError && re.test(e.message) && !e.message.includes('\n'));
    });
  }
});

describe('mesh policy, end to end', () => {
  const m = new TestMesh();
  const stored = () => {
    const p = join(m.dir, 'config', 'policies.json');
    return existsSync(p) ? readFileSync(p, 'utf8') : '';
  };

  before(() => m.install());
  after(() => m.cleanup());

  it('sets a default, adds rules, lists them as table and JSON', async () => {
    assert.equal((await m.cli(['policy', 'default', 'deny', '-n', 'shop'])).code, 0);
    const r = await m.cli(['policy', 'allow', '--from', 'web', '--to', 'api', '--port', '8080', '--path-prefix', '/api/', '-n', 'shop']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /service api has no live endpoint in namespace shop/);
    const table = await m.cli(['policy', 'list']);
    assert.match(table.stdout, /^NAMESPACE\s+DEFAULT\s+RULE\s+FROM\s+TO\s+PORT\s+PATH\nshop\s+deny\s+1\s+web\s+api\s+8080\s+\/api\n$/);
    const doc = JSON.parse((await m.cli(['policy', 'list', '-o', 'json'])).stdout) as PolicyConfig;
    assert.deepEqual(doc.policies[0]!.spec, { default: 'deny', rules: [{ from: 'web', to: 'api', port: 8080, pathPrefix: '/api' }] });
  });

  it('refuses bad flags with one line and a hint, changing nothing', async () => {
    const before = stored();
    for (const args of [['allow', '--from', 'web'], ['default', 'maybe'], ['delete', '9', '-n', 'shop'], ['allow', '--from', 'web', '--to', 'api', '--port', 'x'], ['delete', '-n', 'shop']]) {
      const r = await m.cli(['policy', ...args]);
      assert.equal(r.code, 1, args.join(' '));
      const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('error:'));
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, / — /, 'carries a hint');
    }
    assert.equal(stored(), before);
  });

  it('has the control plane refuse an invalid document with 422 and keep the stored one', async () => {
    const before = stored();
    const doc = { policies: [{ apiVersion: 'mesh.io/v1alpha1', kind: 'Policy', metadata: { name: 'default', namespace: 'shop' }, spec: { default: 'open', rules: [] } }] };
    const r = await m.api('PUT', '/v1/config/policies', { bearer: m.adminToken(), json: doc });
    assert.equal(r.status, 422);
    assert.match(String(r.body.error), /spec.default: must be allow or deny/);
    assert.equal(stored(), before);
  });

  it('deletes a rule by its fields and removes a namespace policy with --all', async () => {
    let r = await m.cli(['policy', 'delete', '--from', 'web', '--to', 'api', '--port', '8080', '--path-prefix', '/api', '-n', 'shop']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr + r.stdout, /deleted rule 1/);
    r = await m.cli(['policy', 'delete', '--all', '-n', 'shop']);
    assert.equal(r.code, 0, r.stderr);
    assert.match((await m.cli(['policy', 'list'])).stdout, /No policies/);
  });

  it('leaves nothing behind on uninstall --purge, stored config included', async () => {
    assert.ok(existsSync(join(m.dir, 'config')));
    const r = await m.cli(['uninstall', '--purge']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!existsSync(m.dir));
  });
});
