// mesh inject FILE|DIR|URL|-: adds the mesh proxy to the pods of Kubernetes manifests, for kubectl apply -f -.
// Kubernetes by nature, whatever --platform says: the settings come from the cluster kubectl would use, or from flags.
import type { Command } from 'commander';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import chalk from 'chalk';
import type { GlobalOptions } from './context.js';
import { kubeTarget } from '../platform/kubernetes/index.js';
import { MeshError } from '../util/errors.js';
import { VERSION } from '../version.js';

interface InjectFlags {
  trustAnchorsFile?: string;
  trustDomain?: string;
  image?: string;
}

const MANIFEST = /\.(ya?ml|json)$/i;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The inputs as (name, text) pairs: stdin, a URL, a file, or a directory's manifests (sorted, not recursive, as kubectl -f). */
async function readInputs(arg: string): Promise<{ name: string; text: string }[]> {
  if (arg === '-') return [{ name: 'stdin', text: await readStdin() }];
  if (/^https?:\/\//.test(arg)) {
    let res: Response;
    try {
      res = await fetch(arg, { signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      throw new MeshError(`cannot fetch ${arg}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`, 'check the URL');
    }
    if (!res.ok) throw new MeshError(`cannot fetch ${arg}: HTTP ${res.status}`, 'check the URL');
    return [{ name: arg, text: await res.text() }];
  }
  let st;
  try {
    st = statSync(arg);
  } catch {
    throw new MeshError(`${arg} does not exist`, 'pass a file, a directory, a URL, or - for stdin');
  }
  if (st.isDirectory()) {
    const files = readdirSync(arg).filter((f) => MANIFEST.test(f)).sort();
    if (!files.length) throw new MeshError(`${arg} holds no .yaml, .yml or .json file`, 'pass a directory of manifests');
    return files.map((f) => ({ name: join(arg, f), text: readFileSync(join(arg, f), 'utf8') }));
  }
  return [{ name: arg, text: readFileSync(arg, 'utf8') }];
}

export function registerInject(program: Command): void {
  program
    .command('inject')
    .argument('<input>', 'a manifest file, a directory of them, an http(s) URL, or - for stdin')
    .description('add the mesh proxy to the pods of Kubernetes manifests (print them for kubectl apply -f -)')
    .option('--trust-anchors-file <file>', 'trust anchor bundle for the proxies (default: read from the cluster\'s mesh install)')
    .option('--trust-domain <domain>', 'trust domain (default: the installed one, or cluster.local)')
    .option('--image <image>', 'proxy image (default: the installed one, or ghcr.io/mesh/mesh:<version>)')
    .action(async (input: string, f: InjectFlags, cmd: Command) => {
      const { injectYaml, reportLines } = await import('../platform/kubernetes/inject.js');
      const names = await import('../platform/kubernetes/names.js');
      // Read the input first: a bad path should not wait on a cluster.
      const inputs = await readInputs(input);
      let trustAnchorsPem: string;
      let installed: Record<string, string> = {};
      if (f.trustAnchorsFile) {
        try {
          trustAnchorsPem = readFileSync(f.trustAnchorsFile, 'utf8');
        } catch {
          throw new MeshError(`cannot read trust anchors ${f.trustAnchorsFile}`, 'pass a readable PEM file');
        }
      } else {
        // Without a cluster, inject still works offline from a trust anchor file: say so with whatever went wrong.
        const kube = await kubeTarget(cmd.optsWithGlobals<GlobalOptions>()).kube().catch((err: unknown) => {
          if (!(err instanceof MeshError)) throw err;
          throw new MeshError(err.message, "inject offline with --trust-anchors-file <PEM> (a local install's is ~/.mesh/identity/trust-anchor.crt), or name a cluster with --kubeconfig/--context or KUBECONFIG");
        });
        type CM = { data?: Record<string, string> };
        const roots = await kube.read<CM & { apiVersion: string }>({ apiVersion: 'v1', kind: 'ConfigMap', name: names.TRUST_ROOTS_CONFIGMAP, namespace: names.CONTROL_NAMESPACE });
        if (!roots?.data?.['ca-bundle.crt']) {
          throw new MeshError(`mesh is not installed on ${kube.contextName} (no ${names.CONTROL_NAMESPACE}/${names.TRUST_ROOTS_CONFIGMAP})`,
            'install it with mesh install --platform kubernetes --apply, or pass --trust-anchors-file');
        }
        trustAnchorsPem = roots.data['ca-bundle.crt'];
        installed = (await kube.read<CM & { apiVersion: string }>({ apiVersion: 'v1', kind: 'ConfigMap', name: names.MESH_CONFIGMAP, namespace: names.CONTROL_NAMESPACE }))?.data ?? {};
      }
      if (!/-----BEGIN CERTIFICATE-----/.test(trustAnchorsPem)) throw new MeshError('the trust anchors hold no PEM certificate', 'pass the trust anchor bundle (PEM)');
      const opts = {
        version: VERSION,
        image: f.image ?? installed.image ?? names.defaultImage(),
        trustDomain: f.trustDomain ?? installed.trustDomain ?? 'cluster.local',
        trustAnchorsPem,
      };
      const outputs: string[] = [];
      const reports = [];
      for (const i of inputs) {
        const r = injectYaml(i.text, opts, i.name);
        outputs.push(r.output);
        reports.push(...r.reports);
      }
      process.stdout.write(outputs.join(''));
      const lines = reportLines(reports);
      process.stderr.write('\n' + lines.map((l) => (l.startsWith('‼') ? chalk.yellow(l) : l)).join('\n') + '\n\n');
    });
}
