// `mesh check --pre`: can a local mesh be installed here? Categories of checkers over a PreView
// (the real one asks this machine; tests hand in fakes).
import type { Category } from './runner.js';

export interface PreView {
  nodeVersion: string;
  /** Whether this Node's OpenSSL offers TLS 1.3 (every mesh connection needs it). */
  tls13(): boolean;
  where: string;
  /** Why the state dir (or the nearest existing parent) cannot be written, or undefined. */
  stateDirProblem(): string | undefined;
  installed(): boolean;
  /** Whether the installed mesh's control plane runs. */
  controlRunning(): boolean;
  /** The control port to check: --control-port, or the installed config's when its control plane is not running. */
  controlPort(): number | undefined;
  portInUse(port: number): Promise<boolean>;
}

export const MIN_NODE_MAJOR = 20;

export const PRE_CATEGORIES: Category<PreView>[] = [
  {
    name: 'pre-mesh-setup',
    checkers: [
      {
        description: `Node.js version is supported (>= ${MIN_NODE_MAJOR})`,
        hint: 'pre-node-version',
        check: (v) => {
          const major = Number(/^v?(\d+)/.exec(v.nodeVersion)?.[1]);
          if (!(major >= MIN_NODE_MAJOR)) throw new Error(`this is Node.js ${v.nodeVersion}; mesh needs ${MIN_NODE_MAJOR} or later`);
        },
      },
      {
        description: 'TLS 1.3 is available',
        hint: 'pre-tls13',
        check: (v) => {
          if (!v.tls13()) throw new Error("this Node.js's OpenSSL offers no TLS 1.3 cipher suites; every mesh connection needs TLS 1.3");
        },
      },
      {
        description: 'state directory is writable',
        hint: 'pre-state-dir',
        check: (v) => {
          const p = v.stateDirProblem();
          if (p) throw new Error(`${p}: pick another with --state-dir or MESH_HOME`);
        },
      },
      {
        description: 'mesh is not installed in the state directory yet',
        hint: 'pre-not-installed',
        warning: true,
        describe: (v) => `a mesh is already installed in ${v.where}`,
        check: (v) => {
          if (!v.installed()) return;
          throw new Error(v.controlRunning() ? "its control plane runs: 'mesh install' would change nothing" : "its control plane is not running: 'mesh install' starts it");
        },
      },
      {
        description: 'control-plane port is free',
        hint: 'pre-control-port',
        check: async (v) => {
          const port = v.controlPort();
          if (port !== undefined && (await v.portInUse(port))) throw new Error(`127.0.0.1:${port} is in use by another process: stop it, or install with another --control-port`);
        },
      },
    ],
  },
];
