// mesh install / uninstall on Kubernetes: render YAML for kubectl, or apply it (server-side) and wait.
import type { Command } from 'commander';
import chalk from 'chalk';
import { checked, kubeBanner, kubeContext, type GlobalOptions } from './context.js';
import { parseDuration } from '../util/duration.js';
import { step } from '../ui/output.js';
import { MeshError } from '../util/errors.js';
import { VERSION } from '../version.js';

export interface KubeInstallFlags {
  trustDomain: string;
  certLifetime?: string;
  crds?: boolean;
  apply?: boolean;
  image?: string;
  wait?: string;
  identityTrustAnchorsFile?: string;
  identityIssuerCertificateFile?: string;
  identityIssuerKeyFile?: string;
}

/** The Kubernetes-only options of `mesh install`; the local platform refuses them. */
export function addKubeInstallOptions(c: Command): Command {
  return c
    .option('--crds', 'kubernetes: render (or apply) the CustomResourceDefinitions; install them before the control plane')
    .option('--apply', 'kubernetes: apply to the cluster (server-side apply) and wait, instead of printing YAML')
    .option('--image <image>', `kubernetes: control plane and proxy image (default ghcr.io/mesh/mesh:${VERSION})`)
    .option('--wait <duration>', 'kubernetes: how long --apply waits for the control plane', '5m')
    .option('--identity-trust-anchors-file <file>', 'kubernetes: trust anchor bundle (PEM) instead of a generated one')
    .option('--identity-issuer-certificate-file <file>', 'kubernetes: issuer certificate (PEM), signed by the trust anchor')
    .option('--identity-issuer-key-file <file>', 'kubernetes: issuer private key (PEM)');
}

const KUBE_ONLY: (keyof KubeInstallFlags)[] = ['crds', 'apply', 'image', 'identityTrustAnchorsFile', 'identityIssuerCertificateFile', 'identityIssuerKeyFile'];

/** For the local platform: a Kubernetes option given there is a mistake worth one line. */
export function refuseKubeFlags(flags: object): void {
  const f = flags as Record<string, unknown>;
  const used = KUBE_ONLY.find((k) => f[k] !== undefined);
  if (used) {
    const flag = '--' + used.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
    throw new MeshError(`${flag} is for the kubernetes platform`, `add --platform kubernetes (or set MESH_PLATFORM=kubernetes)`);
  }
}

/** Names the context for the banner without contacting the cluster; rendering works with no cluster at all. */
async function renderBanner(cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const { loadKubeConfig } = await import('../platform/kubernetes/client.js');
  try {
    kubeBanner((await loadKubeConfig({ kubeconfig: g.kubeconfig, context: g.context })).getCurrentContext());
  } catch (err) {
    if (g.kubeconfig || g.context) throw err;
    kubeBanner('none (rendering only)');
  }
}

export async function kubeInstall(f: KubeInstallFlags, cmd: Command): Promise<void> {
  const { renderCrds } = await import('../platform/kubernetes/crds.js');
  const { renderControlPlane } = await import('../platform/kubernetes/manifests.js');
  const { loadIdentityFiles, generateIdentity, generateWebhookCert } = await import('../platform/kubernetes/identity.js');
  const { defaultImage } = await import('../platform/kubernetes/names.js');
  const { toYaml } = await import('../platform/kubernetes/yaml.js');
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(f.trustDomain)) {
    throw new MeshError(`trust domain '${f.trustDomain}' is not valid`, 'use lower-case letters, digits, dots and dashes, e.g. cluster.local');
  }
  const certLifetime = f.certLifetime ?? '24h';
  checked(() => parseDuration(certLifetime, 'certificate lifetime'), 'e.g. --cert-lifetime 24h');
  const waitMs = checked(() => parseDuration(f.wait ?? '5m', 'wait'), 'e.g. --wait 5m');
  const given = loadIdentityFiles({ trustAnchorsFile: f.identityTrustAnchorsFile, issuerCertificateFile: f.identityIssuerCertificateFile, issuerKeyFile: f.identityIssuerKeyFile });
  if (f.crds && given) throw new MeshError('--crds renders only the CRDs; identity files are for the control plane', 'run mesh install --crds, then mesh install with the --identity-* files');

  if (!f.apply) {
    await renderBanner(cmd);
    if (f.crds) {
      process.stdout.write(toYaml(renderCrds(VERSION)));
      return;
    }
    const identity = given ?? (await generateIdentity(f.trustDomain));
    const webhook = await generateWebhookCert(f.trustDomain);
    process.stdout.write(toYaml(renderControlPlane({ version: VERSION, image: f.image ?? defaultImage(), trustDomain: f.trustDomain, certLifetime, identity, webhook })));
    return;
  }

  const kube = await kubeContext(cmd);
  const { applyAll, preflight, waitForControlPlane } = await import('../platform/kubernetes/install.js');
  if (f.crds) {
    const r = await step('Applying the CRDs', () => applyAll(kube, renderCrds(VERSION) as never), (r) => `Applied ${r.total} CRDs (${r.changed} changed)`);
    void r;
    console.log(`\nmesh CRDs are installed. Next: ${chalk.bold('mesh install --platform kubernetes --apply')}`);
    return;
  }
  const existing = await preflight(kube, given);
  const identity = given ?? existing.identity ?? (await step('Generating the trust anchor and issuer', () => generateIdentity(f.trustDomain)));
  const webhook = existing.webhook ?? (await generateWebhookCert(f.trustDomain));
  const objects = renderControlPlane({ version: VERSION, image: f.image ?? defaultImage(), trustDomain: f.trustDomain, certLifetime, identity, webhook });
  await step('Applying the control plane', () => applyAll(kube, objects), (r) => `Applied ${r.total} objects (${r.changed} changed)`);
  await step('Waiting for the control plane to be ready', () => waitForControlPlane(kube, waitMs), () => 'Control plane is ready');
  console.log(`\nmesh is installed on ${kube.contextName}. Next: label a namespace ${chalk.bold('kubectl label ns NAME mesh.io/inject=enabled')}, or ${chalk.bold('mesh inject app.yaml | kubectl apply -f -')}`);
}

export function addKubeUninstallOptions(c: Command): Command {
  return c
    .option('--apply', 'kubernetes: delete from the cluster, instead of printing what to delete')
    .option('--crds', 'kubernetes: also the CRDs, and with them every Route and Policy');
}

export async function kubeUninstall(f: { apply?: boolean; crds?: boolean; purge?: boolean }, cmd: Command): Promise<void> {
  if (f.purge) throw new MeshError('--purge is for the local platform (it removes the state directory)', 'on kubernetes, mesh uninstall --apply --crds also removes the CRDs');
  const kube = await kubeContext(cmd);
  const { planUninstall, deleteAll } = await import('../platform/kubernetes/install.js');
  const { toYaml } = await import('../platform/kubernetes/yaml.js');
  const plan = await planUninstall(kube, { crds: !!f.crds });
  for (const x of plan.foreign) {
    process.stderr.write(`${chalk.yellow('‼')} namespace mesh-system kept: it holds ${x}, which mesh did not create\n`);
  }
  if (!plan.objects.length) throw new MeshError(`mesh is not installed on ${kube.contextName}`, 'nothing to uninstall');
  if (!f.apply) {
    process.stdout.write(toYaml(plan.objects));
    return;
  }
  await step('Deleting the control plane', () => deleteAll(kube, plan.objects), (n) => `Deleted ${n} objects`);
  if (!f.crds) console.log('The CRDs (and your Routes and Policies) are kept; mesh uninstall --apply --crds removes them too');
}
