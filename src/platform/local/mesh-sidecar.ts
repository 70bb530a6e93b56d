// The process `mesh run -d` and `mesh demo` start for a workload: its sidecar, which supervises the
// app. The spec comes as JSON from the command that checked it, so this process loads the data
// plane and the state dir only, not the CLI (commander, chalk, the commands, the other platform):
// measured 1-2 MB less RSS per sidecar (issue 14). A foreground `mesh run` is the same runWorkload.
// The file name keeps "mesh" in the process's command line, which tells our pids from reused ones.
// It runs as one CommonJS file, mesh-sidecar.cjs (scripts/bundle.mjs), when the build made one.
import { StateDir } from './state.js';
import { runWorkload, type WorkloadSpec } from './workloads.js';
import { parsePortList } from '../../model/ports.js';
import { formatError, MeshError } from '../../util/errors.js';

/** The spec as launchDetached wrote it: opaquePorts as their text. */
export type SidecarSpecJson = Omit<WorkloadSpec, 'opaquePorts'> & { instance: string; opaquePorts?: string };

async function main([root, json]: string[]): Promise<number> {
  if (root === undefined || json === undefined) throw new MeshError('mesh-sidecar is started by mesh run -d and mesh demo', "run a workload with 'mesh run'");
  const raw = JSON.parse(json) as SidecarSpecJson;
  const spec = { ...raw, opaquePorts: raw.opaquePorts === undefined ? undefined : parsePortList(raw.opaquePorts) };
  return runWorkload(new StateDir(root), spec);
}

// No top-level await: scripts/bundle.mjs makes this a CommonJS file.
main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
}, (err: unknown) => {
  // As the CLI reports it (launchDetached reads the exit code: 3 is a port in use).
  process.stderr.write(`error: ${formatError(err)}\n`);
  process.exitCode = err instanceof MeshError ? err.exitCode : 1;
});
