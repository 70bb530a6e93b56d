// The proxy container that mesh inject adds to a pod runs `mesh proxy --platform kubernetes` with its
// three ports: bin/mesh.js runs that command line from here, without the CLI (commander, chalk, the
// commands, the platform table), as mesh-sidecar.ts does for local sidecars: ~1-1.5 MB less RSS per
// pod (issue 14). It runs as one CommonJS file (scripts/bundle.mjs). Any other command line, --help
// included, goes to the CLI.
import type { ProxyFlags } from '../index.js';

const PORT_FLAGS: Record<string, 'inboundPort' | 'outboundPort' | 'adminPort'> = {
  '--inbound-port': 'inboundPort',
  '--outbound-port': 'outboundPort',
  '--admin-port': 'adminPort',
};

/**
 * The flags of an injected proxy's command line (process.argv after the script), or null when it is
 * anything else: another command, an option this entry does not take, or a platform other than Kubernetes.
 */
export function injectedProxyFlags(args: readonly string[], env: NodeJS.ProcessEnv = process.env): ProxyFlags | null {
  // As the CLI's defaults for `mesh proxy`.
  const f: ProxyFlags = { inboundPort: '0', outboundPort: '0', adminPort: '0' };
  let platform = env.MESH_PLATFORM || 'local';
  let command = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === 'proxy' && !command) {
      command = true;
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq < 0 ? a : a.slice(0, eq);
    const value = eq < 0 ? args[++i] : a.slice(eq + 1);
    if (value === undefined || value.startsWith('-')) return null;
    if (name === '--platform') platform = value;
    else if (command && PORT_FLAGS[name] !== undefined) f[PORT_FLAGS[name]!] = value;
    else return null;
  }
  return command && platform === 'kubernetes' ? f : null;
}

/** Runs the injected proxy until a signal, and reports a failure as the CLI does (one line, its exit code). */
export async function runInjectedProxy(f: ProxyFlags): Promise<void> {
  const { formatError, MeshError } = await import('../../util/errors.js');
  try {
    const [{ runKubeProxy }, { waitForSignal }] = await Promise.all([import('./sidecar.js'), import('../../util/signals.js')]);
    const proxy = await runKubeProxy(f);
    await waitForSignal();
    await proxy.close();
  } catch (err) {
    process.stderr.write(`error: ${formatError(err)}\n`);
    process.exitCode = err instanceof MeshError ? err.exitCode : 1;
  }
}
