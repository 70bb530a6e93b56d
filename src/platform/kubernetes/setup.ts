// mesh install / uninstall on Kubernetes: render YAML for kubectl, or apply it (server-side) and wait.
import chalk from 'chalk';
import { parseDuration } from '../../util/duration.js';
import { step } from '../../ui/output.js';
import { checked, MeshError } from '../../util/errors.js';
import { VERSION } from '../../version.js';
import type { KubeClient, TargetOptions } from './client.js';
import type { IdentityValues } from './identity.js';
import type { ExistingInstall } from './install.js';
import type { InstallFlags, UninstallFlags } from '../index.js';

/** The cluster, connected on first use, and the banner that names its context (unless quiet). */
export interface Target {
  options: TargetOptions;
  kube(): Promise<KubeClient>;
  banner(contextName: string): void;
}

/** Names the context for the banner without contacting the cluster; rendering works with no cluster at all. */
async function renderTarget(t: Target): Promise<import('@kubernetes/client-node').KubeConfig | undefined> {
  const { loadKubeConfig } = await import('./client.js');
  try {
    const kc = await loadKubeConfig(t.options);
    t.banner(kc.getCurrentContext());
    return kc;
  } catch (err) {
    if (t.options.kubeconfig || t.options.context) throw err;
    t.banner('none (rendering only)');
    return undefined;
  }
}

/**
 * What a rendered install must keep from the cluster it names: the installed identity and webhook certificate, as
 * --apply keeps them (else `mesh install | kubectl apply -f -` would replace the anchors every proxy trusts). A
 * cluster that cannot be reached is said, and the render goes on with what was given or generated.
 */
async function installedForRender(kc: import('@kubernetes/client-node').KubeConfig | undefined, given: IdentityValues | undefined): Promise<ExistingInstall> {
  if (!kc) return {};
  const { KubeClient, KubeUnreachable } = await import('./client.js');
  const { readInstalled, keepInstalled } = await import('./install.js');
  const kube = await KubeClient.fromConfig(kc);
  let installed;
  try {
    installed = await readInstalled(kube);
  } catch (err) {
    if (!(err instanceof KubeUnreachable)) throw err;
    process.stderr.write(`${chalk.yellow('‼')} ${err.message}: rendering with ${given ? 'the given' : 'a new'} identity; if mesh is installed there, ${given ? 'it must be the same' : 'applying this replaces its trust anchors (render with the --identity-* files instead)'}\n`);
    return {};
  }
  return keepInstalled(installed, given, kube.contextName);
}

export async function kubeInstall(t: Target, f: InstallFlags): Promise<void> {
  const { renderCrds } = await import('./crds.js');
  const { renderControlPlane } = await import('./manifests.js');
  const { loadIdentityFiles, generateIdentity, generateWebhookCert } = await import('./identity.js');
  const { defaultImage } = await import('./names.js');
  const { toYaml } = await import('./yaml.js');
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(f.trustDomain)) {
    throw new MeshError(`trust domain '${f.trustDomain}' is not valid`, 'use lower-case letters, digits, dots and dashes, e.g. cluster.local');
  }
  const certLifetime = f.certLifetime ?? '24h';
  checked(() => parseDuration(certLifetime, 'certificate lifetime'), 'e.g. --cert-lifetime 24h');
  const waitMs = checked(() => parseDuration(f.wait ?? '5m', 'wait'), 'e.g. --wait 5m');
  const given = loadIdentityFiles({ trustAnchorsFile: f.identityTrustAnchorsFile, issuerCertificateFile: f.identityIssuerCertificateFile, issuerKeyFile: f.identityIssuerKeyFile });
  if (f.crds && given) throw new MeshError('--crds renders only the CRDs; identity files are for the control plane', 'run mesh install --crds, then mesh install with the --identity-* files');

  if (!f.apply) {
    const kc = await renderTarget(t);
    if (f.crds) {
      process.stdout.write(toYaml(renderCrds(VERSION)));
      return;
    }
    const existing = await installedForRender(kc, given);
    const identity = given ?? existing.identity ?? (await generateIdentity(f.trustDomain));
    const webhook = existing.webhook ?? (await generateWebhookCert(f.trustDomain));
    process.stdout.write(toYaml(renderControlPlane({ version: VERSION, image: f.image ?? defaultImage(), trustDomain: f.trustDomain, certLifetime, identity, webhook })));
    return;
  }

  const kube = await t.kube();
  const { applyAll, preflight, waitForControlPlane } = await import('./install.js');
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

export async function kubeUninstall(t: Target, f: UninstallFlags): Promise<void> {
  if (f.purge) throw new MeshError('--purge is for the local platform (it removes the state directory)', 'on kubernetes, mesh uninstall --apply --crds also removes the CRDs');
  const kube = await t.kube();
  const { planUninstall, deleteAll } = await import('./install.js');
  const { toYaml } = await import('./yaml.js');
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
