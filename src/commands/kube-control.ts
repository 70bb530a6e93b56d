// mesh control --platform kubernetes: the control plane inside the cluster (the mesh-control Deployment runs it).
import type { Command } from 'commander';
import { checked, kubeContext } from './context.js';
import { parsePort } from '../util/duration.js';
import { waitForSignal } from '../util/signals.js';

export async function kubeControl(f: { port?: string; webhookPort?: string }, cmd: Command): Promise<void> {
  const { CONTROL_PORT, WEBHOOK_PORT } = await import('../platform/kubernetes/names.js');
  const port = f.port ? checked(() => parsePort(f.port!, 'port', true), 'pass --port 0-65535') : CONTROL_PORT;
  const webhookPort = f.webhookPort ? checked(() => parsePort(f.webhookPort!, 'webhook port', true), 'pass --webhook-port 0-65535') : WEBHOOK_PORT;
  // In a pod this is the in-cluster config; the banner would only clutter the logs.
  const kube = await kubeContext(cmd, true);
  const { runKubeControl } = await import('../platform/kubernetes/control.js');
  const running = await runKubeControl(kube, { port, webhookPort, address: process.env.MESH_LISTEN_ADDRESS || undefined });
  await waitForSignal();
  await running.close();
}
