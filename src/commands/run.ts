// mesh run / mesh ingress / mesh stop / mesh workloads: workloads with their sidecars, locally.
import { Option, type Command } from 'commander';
import chalk from 'chalk';
import { checked, outputFormat, platform, resourceName } from './context.js';
import { checkName } from '../model/snapshot.js';
import { APP_PROTOCOLS, isAppProtocol } from '../model/app-protocol.js';
import { parsePort } from '../util/duration.js';
import { MeshError } from '../util/errors.js';
import { json } from '../ui/output.js';
import type { RestartPolicy, WorkloadRecord, WorkloadSpec } from '../platform/index.js';
import { parsePortList, parseUpstream } from '../model/ports.js';

interface RunFlags {
  name: string;
  version: string;
  namespace: string;
  port?: string;
  appProtocol: string;
  restart?: string;
  instance?: string;
  detach?: boolean;
  output?: string;
  demo?: boolean;
  accessLog?: boolean;
  traceCollector?: string;
  upstream?: string[];
  opaquePorts?: string;
}

function telemetryFlags(f: { accessLog?: boolean; traceCollector?: string }): Pick<WorkloadSpec, 'accessLog' | 'traceCollector'> {
  if (f.traceCollector !== undefined && !/^http:\/\/[^/\s]+(\/\S*)?$/.test(f.traceCollector)) {
    throw new MeshError(`trace collector '${f.traceCollector}' is not an http:// URL`, 'e.g. --trace-collector http://127.0.0.1:4318/v1/traces');
  }
  return { accessLog: f.accessLog, traceCollector: f.traceCollector };
}

function names(f: { name?: string; version?: string; namespace: string; instance?: string }): void {
  checked(() => {
    if (f.name !== undefined) checkName(f.name, 'service name');
    if (f.version !== undefined) checkName(f.version, 'version');
    checkName(f.namespace, 'namespace');
    if (f.instance !== undefined) checkName(f.instance, 'instance name');
  }, 'names are lower-case letters, digits and -, like reviews or v2');
}

function describe(rec: WorkloadRecord, appListening: boolean): string {
  const lines = [`${chalk.bold(rec.instance)} started (${rec.kind === 'ingress' ? 'ingress' : `service ${rec.service}, version ${rec.version}`}, namespace ${rec.namespace})`];
  if (rec.kind === 'ingress') lines.push(`  ingress:  http://${rec.outbound}/ → ${rec.service === 'ingress' ? '' : rec.service}`);
  else if (rec.appPort === undefined) lines.push(`  app:      pid ${rec.appPid}, client only (no --port: it calls out through the sidecar and serves nothing)`);
  else lines.push(`  app:      pid ${rec.appPid}, port ${rec.appPort}${appListening ? '' : chalk.yellow(' (not listening yet; it joins the service when it does)')}`);
  lines.push(`  sidecar:  pid ${rec.pid}, outbound ${rec.outbound}${rec.inbound ? `, inbound ${rec.inbound} (mTLS)` : ''}, admin ${rec.admin}${rec.restart ? `, restarts the app (--restart ${rec.restart})` : ''}`);
  for (const u of rec.upstreams ?? []) lines.push(`  upstream: ${u.address} → ${u.authority} (mTLS)`);
  lines.push(`  logs:     ${rec.log}`);
  return lines.join('\n');
}

async function start(cmd: Command, spec: WorkloadSpec, f: { detach?: boolean; output?: string }): Promise<void> {
  const format = outputFormat(f.output);
  const p = platform(cmd, format === 'json');
  if (f.detach) {
    const { rec, appListening } = await p.launchWorkload(spec);
    if (format === 'json') json(rec);
    else console.log(describe(rec, appListening));
    return;
  }
  const code = await p.runWorkload(spec, (rec) => {
    if (format === 'json') json(rec);
    else process.stderr.write(describe(rec, true).replace(/ \(not listening.*$/m, '') + '\n');
  });
  process.exitCode = code;
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run an app with its sidecar proxy: mesh run --name reviews --version v1 --port 9081 -- node app.js')
    .requiredOption('--name <service>', 'service the app belongs to')
    .option('--version <version>', 'version of the service (subsets and splits use it)', 'v1')
    .option('-n, --namespace <namespace>', 'namespace of the service', 'default')
    .option('--port <port>', 'port the app listens on (127.0.0.1; given to it as $PORT); without it the app is a client only: outbound, no inbound')
    .option('--app-protocol <protocol>', 'what the app serves on --port: http1 or h2c (HTTP/2 cleartext, gRPC servers)', 'http1')
    .option('--restart <policy>', 'when the app exits: never (the sidecar exits too), on-failure or always (restart it with back-off)', 'never')
    .option('--instance <name>', 'name of this instance (default: service-version-random)')
    .option('-d, --detach', 'run in the background')
    .option('-o, --output <format>', 'table or json')
    .option('--access-log', 'log every request through the sidecar as a JSON line')
    .option('--trace-collector <url>', 'export spans as OTLP/HTTP JSON to this URL')
    .option('--upstream <service:port=127.0.0.1:port>', 'a local port whose connections go to a service\'s port through the mesh (repeatable), e.g. redis:6379=127.0.0.1:16379', (v: string, all: string[] = []) => [...all, v])
    .option('--opaque-ports <ports>', 'ports whose traffic is TCP never sniffed for HTTP (server-speaks-first protocols), e.g. 3306,6379')
    .addOption(new Option('--demo', 'started by mesh demo').hideHelp())
    .argument('<command...>', "the app's command, after --")
    .action(async (command: string[], f: RunFlags, cmd: Command) => {
      names(f);
      const appPort = f.port === undefined ? undefined : checked(() => parsePort(f.port!, 'app port'), 'pass --port 1-65535, or no --port for an app that only calls out');
      if (!isAppProtocol(f.appProtocol)) throw new MeshError(`unknown app protocol '${f.appProtocol}'`, `use --app-protocol ${APP_PROTOCOLS.join(' or ')}`);
      const appProtocol = f.appProtocol === 'http1' ? undefined : f.appProtocol;
      const restart = f.restart as RestartPolicy;
      if (!['never', 'on-failure', 'always'].includes(restart)) throw new MeshError(`unknown restart policy '${f.restart}'`, 'use --restart never, on-failure or always');
      const upstreams = (f.upstream ?? []).map((u) => checked(() => parseUpstream(u), 'e.g. --upstream redis:6379=127.0.0.1:16379'));
      const seen = new Set<number>();
      for (const u of upstreams) {
        if (seen.has(u.listenPort) || u.listenPort === appPort) throw new MeshError(`local port ${u.listenPort} is given twice`, 'give each --upstream (and --port) its own local port');
        seen.add(u.listenPort);
      }
      const opaquePorts = f.opaquePorts === undefined ? undefined : checked(() => parsePortList(f.opaquePorts!), 'e.g. --opaque-ports 3306,6379 or 8000-8100');
      await start(cmd, { kind: 'workload', service: f.name, version: f.version, namespace: f.namespace, instance: f.instance, appPort, appProtocol, command, restart, demo: f.demo, upstreams, opaquePorts, ...telemetryFlags(f) }, f);
    });

  program
    .command('ingress')
    .description('run the ingress: plain HTTP on 127.0.0.1 into the mesh (north-south)')
    .option('--port <port>', 'port to listen on, on 127.0.0.1', '8080')
    .option('--service <service>', 'service that gets requests whose Host is not a mesh service', 'productpage')
    .option('-n, --namespace <namespace>', 'namespace the ingress routes into', 'default')
    .option('--instance <name>', 'name of this instance')
    .option('-d, --detach', 'run in the background')
    .option('-o, --output <format>', 'table or json')
    .option('--access-log', 'log every request through the ingress as a JSON line')
    .option('--trace-collector <url>', 'export spans as OTLP/HTTP JSON to this URL')
    .addOption(new Option('--demo', 'started by mesh demo').hideHelp())
    .action(async (f: { port: string; service: string; namespace: string; instance?: string; detach?: boolean; output?: string; demo?: boolean; accessLog?: boolean; traceCollector?: string }, cmd: Command) => {
      names({ name: f.service, namespace: f.namespace, instance: f.instance });
      const ingressPort = checked(() => parsePort(f.port, 'ingress port', true), 'pass --port 1-65535');
      await start(cmd, { kind: 'ingress', service: 'ingress', version: 'v1', namespace: f.namespace, instance: f.instance, ingressPort, defaultService: f.service, demo: f.demo, ...telemetryFlags(f) }, f);
    });

  program
    .command('stop')
    .description('stop workloads by instance name, or every instance of a service')
    .argument('[instance...]', 'instance names (see mesh workloads)')
    .option('--service <service>', 'stop every instance of this service')
    .action(async (instances: string[], f: { service?: string }, cmd: Command) => {
      instances = instances.map((i) => resourceName(i, 'pod'));
      if (f.service !== undefined) f.service = resourceName(f.service, 'service');
      const stopped = await platform(cmd).stopWorkloads({ instances, service: f.service });
      for (const r of stopped) console.log(`${r.instance} stopped`);
    });

  program
    .command('workloads')
    .alias('ps')
    .description('list the workloads running on the platform')
    .option('-o, --output <format>', 'table or json')
    .action(async (f: { output?: string }, cmd: Command) => {
      const format = outputFormat(f.output);
      const { table } = await import('../ui/table.js');
      const list = await platform(cmd, format === 'json').workloads();
      if (format === 'json') return json(list.records);
      if (!list.records.length) return void console.log(list.empty);
      console.log(table(list.head, list.rows));
      for (const note of list.notes) console.log(note);
    });
}

