// The first hour of a new user (issue 13), through the real binary: every printed hint runs as
// printed, states are said as they are, and errors name the fix that works.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { mesh, TestMesh, ROOT, assertOneLineError, waitFor, alive, request, type CliResult, type WorkloadInfo } from './support/mesh.js';

/** Runs a printed command line through sh in the package directory, as a user would paste it. */
function shell(line: string, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', line], { cwd: ROOT, env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${line} did not finish within ${timeoutMs} ms; it printed: ${(stdout + stderr).trim().slice(-2000) || 'nothing'}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

/** Holds 127.0.0.1:port when it is free (when it is not, someone else holds it: the same for the test). */
async function hold(port: number): Promise<net.Server | undefined> {
  const s = net.createServer();
  return new Promise((resolve) => {
    s.once('error', () => resolve(undefined));
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

describe('mesh demo on a machine where mesh is not on PATH and port 8080 is taken', () => {
  const m = new TestMesh();
  let held: net.Server | undefined;
  let demo: CliResult;
  before(async () => {
    held = await hold(8080);
    demo = await m.cli(['demo', '--no-traffic'], { timeoutMs: 90_000 });
  });
  after(async () => {
    held?.close();
    await m.cleanup();
  });

  it('says why the ingress is not on 8080', () => {
    assert.equal(demo.code, 0, demo.stderr);
    assert.match(demo.stderr, /‼ port 8080 is in use by another process: the ingress listens on \d+ instead \(--ingress-port picks one\)/);
    assert.doesNotMatch(demo.stdout, /127\.0\.0\.1:8080\//);
  });

  it('prints every Next hint so that it runs as printed', async () => {
    const next = demo.stdout.slice(demo.stdout.indexOf('Next:\n') + 6).split('\n').filter((l) => l.trim());
    assert.ok(next.length >= 8, demo.stdout);
    const cmds = next.map((l) => l.trim().split(/\s{2,}/)[0]!);
    for (const c of cmds) assert.match(c, new RegExp(`^npx mesh --state-dir ${m.dir} `), 'npx finds mesh in the package; the state dir given is kept');
    const down = cmds.pop()!;
    assert.match(down, /demo --down$/);
    for (const c of cmds) {
      const r = await shell(c);
      assert.equal(r.code, 0, `${c}\n${r.stderr}`);
      assert.doesNotMatch(r.stderr, /command not found|error:/, c);
    }
    const r = await shell(down);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Stopped the sample/);
  });
});

describe('the CLI itself', () => {
  it('prints its version with --version and -V, while run --version still names the app version', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = await mesh([flag]);
      assert.equal(r.code, 0);
      assert.equal(r.stdout, `${pkg.version}\n`);
    }
    const r = await mesh(['--state-dir', join(tmpdir(), 'mesh-nothing-here'), 'run', '--name', 'web', '--version', 'v2', '--', 'true']);
    assertOneLineError(r, /not installed/);
  });

  it('completes commands, subcommands and flags in bash (zsh through bashcompinit, fish natively)', async () => {
    const bash = (await mesh(['completion', 'bash'])).stdout;
    const complete = (words: string[]) =>
      execFileSync('bash', ['-c', `${bash}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _mesh_completions; echo "\${COMPREPLY[*]}"`], { encoding: 'utf8' }).trim();
    assert.equal(complete(['mesh', 'ro']), 'route');
    assert.deepEqual(complete(['mesh', 'route', '']).split(' ').slice(0, 5), ['set', 'get', 'list', 'clear', 'apply']);
    assert.match(complete(['mesh', '--state-dir', '/tmp/x', 'route', 'set', '--ti']), /^--timeout$/);
    assert.match(complete(['mesh', 'ps', '-']), /--output/);
    const zsh = (await mesh(['completion', 'zsh'])).stdout;
    assert.match(zsh, /bashcompinit/);
    assert.match(zsh, /complete -o default -F _mesh_completions mesh/);
    const fish = (await mesh(['completion', 'fish'])).stdout;
    assert.match(fish, /^complete -c mesh -n '__fish_use_subcommand' -a route -d /m);
    assert.match(fish, /^complete -c mesh -n '__fish_seen_subcommand_from route; and __fish_seen_subcommand_from set' -l timeout$/m);
    assertOneLineError(await mesh(['completion', 'tcsh']), /no completion for shell 'tcsh'.*mesh completion bash/);
  });

  it('never offers a command that stops things as the correction of a typo', async () => {
    for (const typo of ['stpo', 'uninstal']) {
      const r = await mesh([typo]);
      assertOneLineError(r, new RegExp(`unknown command '${typo}'`));
      assert.doesNotMatch(r.stderr, /did you mean|stop|uninstall'/i);
    }
    const r = await mesh(['sta']);
    assertOneLineError(r, /unknown command 'sta' \(did you mean stat\?\)/);
  });

  it("points a subcommand's usage error at that subcommand's help", async () => {
    assertOneLineError(await mesh(['run', '--', 'true']), /required option '--name <service>' not specified — see '.*mesh run --help'/);
    assertOneLineError(await mesh(['route', 'set']), /missing required argument 'service' — see '.*mesh route set --help'/);
  });

  it('names --trust-anchors-file when inject finds no cluster', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mesh-inject-'));
    try {
      writeFileSync(join(dir, 'app.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n');
      const r = await mesh(['inject', join(dir, 'app.yaml')], { env: { KUBECONFIG: '', HOME: dir, KUBERNETES_SERVICE_HOST: '' } });
      assertOneLineError(r, /no Kubernetes cluster configured.* — inject offline with --trust-anchors-file/);
      assert.doesNotMatch(r.stderr, /drop --platform kubernetes/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the rest of the commands: states said, hints that run (the sweep)', () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'mesh-sweep-')), 'state');
  after(async () => {
    await mesh(['--state-dir', dir, 'uninstall', '--purge']);
    rmSync(join(dir, '..'), { recursive: true, force: true });
  });
  const cli = (args: string[]) => mesh(['--state-dir', dir, ...args]);

  it('says why there is no server version, and what brings it', async () => {
    const r = await cli(['version']);
    assert.match(r.stdout, new RegExp(`Server version: unavailable \\(no mesh is installed in ${dir}: '.*mesh --state-dir ${dir} install'\\)`));
  });

  it('prints runnable hints when nothing runs, and one answer when the sample is not running', async () => {
    assert.match((await cli(['workloads'])).stdout, new RegExp(`Start one with 'npx mesh --state-dir ${dir} run'`));
    const down = await cli(['demo', '--down']);
    assert.equal(down.stdout, 'The sample was not running.\n');
    assert.doesNotMatch(down.stderr, /Stopped/);
  });

  it('says which install flags an existing install ignores', async () => {
    assert.equal((await cli(['install'])).code, 0);
    const r = await cli(['install', '--trust-domain', 'example.org']);
    assert.equal(r.code, 0);
    assert.match(r.stderr, /‼ --trust-domain ignored: the mesh in \S+ is installed already \('.*mesh --state-dir \S+ uninstall --purge' first/);
  });

  it('keeps internal flags out of help and completion', async () => {
    assert.doesNotMatch((await mesh(['run', '--help'])).stdout, /--demo/);
    assert.doesNotMatch((await mesh(['completion', 'bash'])).stdout, /--demo/);
  });
});

describe('an installed mesh, as a new user meets it', () => {
  const m = new TestMesh();
  before(() => m.install());
  after(() => m.cleanup());

  it('check --pre gives one true answer about the install there is', async () => {
    const r = await m.cli(['check', '--pre']);
    assert.match(r.stdout, new RegExp(`‼ a mesh is already installed in ${m.dir}\\n    its control plane runs: '.*mesh --state-dir ${m.dir} install' would change nothing`));
    assert.doesNotMatch(r.stdout, /not installed/);
  });

  it('runs a client-only workload without --port: outbound only, registered, green in check', async () => {
    await m.run('echo');
    const out = join(m.dir, 'client-result');
    const app = `const http=require('http');const [h,p]=process.env.MESH_OUTBOUND.split(':');
      const go=()=>http.get({host:h,port:p,path:'/x',headers:{host:'echo'}},(r)=>{require('fs').writeFileSync(${JSON.stringify(out)},String(r.statusCode));r.resume()}).on('error',()=>setTimeout(go,200));
      go();setInterval(()=>{},1000)`;
    const r = await m.cli(['run', '-d', '--name', 'job', '--', process.execPath, '-e', app]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /client only \(no --port/);
    assert.doesNotMatch(r.stdout, /inbound/);
    await waitFor('the client to reach echo through its sidecar', () => readFileSync(out, 'utf8') === '200');
    const w = await m.cli(['workloads']);
    assert.match(w.stdout, /job-v1-\S+\s+job\s+v1\s+Running\s+0\s+\(client\)\s+127\.0\.0\.1:\d+\s+-/);
    const c = await m.cli(['check', '--wait', '10s']);
    assert.equal(c.code, 0, c.stdout);
    assert.match(c.stdout, /√ data plane proxies are connected to the control plane/);
  });

  it('keeps a crashed workload listed with its exit code, and warns in check', async () => {
    const r = await m.cli(['run', '-d', '-o', 'json', '--name', 'crash', '--', process.execPath, '-e', 'setTimeout(() => process.exit(3), 300)']);
    assert.equal(r.code, 0, r.stderr);
    const rec = JSON.parse(r.stdout) as { instance: string; pid: number };
    await waitFor('the sidecar to stop with its app', () => !alive(rec.pid));
    const w = await m.cli(['workloads']);
    assert.match(w.stdout, new RegExp(`${rec.instance}\\s+crash\\s+v1\\s+Exited \\(code 3, \\d+s ago\\)`));
    const j = JSON.parse((await m.cli(['workloads', '-o', 'json'])).stdout) as { instance: string; state: string; exitCode: number }[];
    assert.deepEqual(j.filter((x) => x.instance === rec.instance).map((x) => [x.state, x.exitCode]), [['exited', 3]]);
    const c = await m.cli(['check']);
    assert.match(c.stdout, new RegExp(`‼ workloads' apps are running\\n    ${rec.instance}: its app exited with code 3 at \\S+; see \\S+${rec.instance}.log, then '.*mesh --state-dir \\S+ stop ${rec.instance}' to clear it`));
    const s = await m.cli(['stop', `po/${rec.instance}`]);
    assert.equal(s.code, 0, s.stderr);
    assert.doesNotMatch((await m.cli(['workloads'])).stdout, new RegExp(rec.instance));
  });

  it('restarts a crashing app with --restart on-failure and counts the restarts', async () => {
    const r = await m.cli(['run', '-d', '-o', 'json', '--name', 'flaky', '--restart', 'on-failure', '--', process.execPath, '-e', 'setTimeout(() => process.exit(2), 200)']);
    assert.equal(r.code, 0, r.stderr);
    const rec = JSON.parse(r.stdout) as { instance: string; pid: number };
    const row = await waitFor('two restarts', async () => {
      const j = JSON.parse((await m.cli(['workloads', '-o', 'json'])).stdout) as { instance: string; restarts?: number; status: string }[];
      const x = j.find((y) => y.instance === rec.instance);
      return x && (x.restarts ?? 0) >= 2 ? x : undefined;
    }, 20_000, 300);
    assert.match(row!.status, /Running|Restarting \(app exited with code 2\)/);
    assert.ok(alive(rec.pid), 'the sidecar stays up');
    assert.match((await m.cli(['workloads'])).stdout, new RegExp(`${rec.instance}\\s+flaky\\s+v1\\s+(Running|Restarting \\(app exited with code 2\\))\\s+\\d+ \\(\\d+s ago\\)`));
    assertOneLineError(await m.cli(['run', '--name', 'x', '--restart', 'sometimes', '--', 'true']), /unknown restart policy 'sometimes'/);
    await m.cli(['stop', rec.instance]);
  });

  it('says the weights are relative when they do not sum to 100, and what they come to', async () => {
    await m.run('reviews', { version: 'v1' });
    await m.run('reviews', { version: 'v2' });
    const r = await m.cli(['route', 'set', 'svc/reviews', 'v1=80', 'v2=30']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /‼ the weights sum to 110, not 100: they are relative, so reviews gets v1 72\.7%, v2 27\.3%/);
    assert.match(r.stderr, /√ route reviews applied \(v1 72\.7%, v2 27\.3%\); \d+\/\d+ proxies up to date/);
    const ok = await m.cli(['route', 'set', 'reviews', 'v1=80', 'v2=20']);
    assert.doesNotMatch(ok.stderr, /‼/);
    assert.match(ok.stderr, /route reviews applied \(v1 80%, v2 20%\)/);
  });

  it('warns when a policy names a client that does not run', async () => {
    const r = await m.cli(['policy', 'allow', '--from', 'nosuch', '--to', 'svc/reviews']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /‼ client nosuch matches no workload that runs \(no service nosuch in namespace default\)/);
    const known = await m.cli(['policy', 'allow', '--from', 'echo', '--to', 'reviews']);
    assert.doesNotMatch(known.stderr, /client echo matches no workload/);
  });

  it("takes kubectl's TYPE/NAME in stat", async () => {
    const r = await m.cli(['stat', 'deploy/reviews-v1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^NAME\s+MESHED.*\nreviews-v1\s+1\/1/);
    assertOneLineError(await m.cli(['stat', 'deploy/reviews-v1', 'reviews-v2']), /name given twice/);
  });

  it('says the control plane stopped or died, when, and where its log is', async () => {
    const pid = m.controlPid()!;
    process.kill(pid, 'SIGTERM');
    // Its record says when it stopped (the process itself may linger while a long-poll timer runs out).
    await waitFor('the control plane to stop', () => /stoppedAt/.test(readFileSync(join(m.dir, 'control.json'), 'utf8')));
    let c = await m.cli(['check']);
    assert.equal(c.code, 1);
    assert.match(c.stdout, new RegExp(`× control plane process is running\\n    the control plane \\(pid ${pid}, started at \\S+\\) stopped at \\S+; its log is ${m.dir}/logs/control.log: '.*mesh --state-dir \\S+ install' restarts it`));
    await m.install();
    const again = m.controlPid()!;
    process.kill(again, 'SIGKILL');
    await waitFor('the control plane to die', () => !alive(again));
    c = await m.cli(['check']);
    assert.match(c.stdout, new RegExp(`the control plane \\(pid ${again}, started at \\S+\\) died \\(its last log line was written at \\S+\\); its log is ${m.dir}/logs/control.log: '.*install' restarts it`));
    await m.install();
  });
});

describe('mesh stat where a fault or authorization answers instead of the app', () => {
  const m = new TestMesh();
  let caller: WorkloadInfo;
  before(async () => {
    await m.install(['--scrape-interval', '1s']);
    await m.run('ratings');
    caller = await m.run('caller');
  });
  after(() => m.cleanup());

  const send = async (n: number) => {
    const codes: number[] = [];
    for (let i = 0; i < n; i++) codes.push((await request(caller.outbound, { path: `/r/${i}`, headers: { host: 'ratings' } })).status);
    return codes;
  };
  const row = async (args: string[]) => {
    const r = await m.cli(['stat', 'deploy', ...args, '-o', 'json']);
    return (JSON.parse(r.stdout) as { name: string; success: number | null; rps: number | null; denied_rps: number | null }[]).find((x) => x.name === 'ratings-v1');
  };

  it('counts fault-injected aborts against the destination they were routed to', async () => {
    const set = await m.cli(['route', 'set', 'ratings', 'v1', '--fault-abort', '503@50%']);
    assert.equal(set.code, 0, set.stderr);
    const codes = await send(60);
    const failed = codes.filter((c) => c === 503).length;
    assert.ok(failed > 10 && failed < 50, `about half aborted: ${failed}/60`);
    const r = await waitFor('the aborts in stat --from caller-v1', async () => {
      const x = await row(['--from', 'caller-v1']);
      // Scrapes land each second: the figure settles on the true one once all 60 are in the window.
      return x?.success != null && Math.abs(x.success - (60 - failed) / 60) < 0.05 ? x : undefined;
    }, 60_000, 500);
    assert.ok(r!.success! < 0.9, `success ${r!.success}`);
    assert.equal((await m.cli(['route', 'clear', 'ratings'])).code, 0);
  });

  it('shows a DENIED column and a ‼ line when authorization refuses requests, keeping SUCCESS as Linkerd counts it', async () => {
    const before = await m.cli(['stat', 'deploy']);
    assert.doesNotMatch(before.stdout, /DENIED/);
    assert.equal((await m.cli(['policy', 'default', 'deny'])).code, 0);
    // The cleared route (no more faults) and the policy reach the sidecars within moments: then every call is refused.
    const codes = await waitFor('every call refused with 403', async () => {
      const c = await send(10);
      return c.every((x) => x === 403) ? c : undefined;
    }, 30_000, 200);
    assert.deepEqual([...new Set(codes)], [403]);
    await waitFor('denials in stat', async () => ((await row([]))?.denied_rps ?? 0) > 0, 60_000, 500);
    const r = await m.cli(['stat', 'deploy']);
    assert.match(r.stdout, /^NAME\s+MESHED\s+SUCCESS\s+DENIED\s+RPS/);
    assert.match(r.stdout, /\nratings-v1\s+1\/1\s+\S+\s+\d+\.\drps\s+/);
    assert.match(r.stderr, /‼ authorization refused requests \(403\) to ratings-v1 in the last 1m .*'.*mesh --state-dir \S+ policy list' shows the rules/);
  });
});

describe('mesh install in a state directory others can reach (issue 10, class 8)', () => {
  const root = mkdtempSync(join(tmpdir(), 'mesh-perm-'));
  after(async () => {
    await mesh(['--state-dir', join(root, 'open'), 'uninstall', '--purge']);
    rmSync(root, { recursive: true, force: true });
  });

  it('tightens a world-writable MESH_HOME of its own to 0700, and says so', async () => {
    const dir = join(root, 'open');
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    const r = await mesh(['install'], { env: { MESH_HOME: dir } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`‼ state directory ${dir} was open to every user \\(mode 777\\): tightened it to 700`));
    assert.equal(statSync(dir).mode & 0o777, 0o700);
  });

  it("refuses a state directory that belongs to another user", { skip: process.getuid?.() !== 0 && 'needs root to make a directory of another user' }, async () => {
    const dir = join(root, 'theirs');
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, 65534, 65534);
    const r = await mesh(['--state-dir', dir, 'install']);
    assertOneLineError(r, /state directory .*theirs belongs to another user \(uid 65534\)/);
    assert.deepEqual(readdirSync(dir), []);
  });
});
