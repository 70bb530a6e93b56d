#!/usr/bin/env node
// Entry point of the one mesh binary: CLI, control plane and sidecar proxy. An injected Kubernetes
// proxy's command line runs without loading the CLI (src/platform/kubernetes/proxy-main.ts).
const args = process.argv.slice(2);
const injected = args.includes('proxy') ? await import('../dist/src/platform/kubernetes/proxy-main.js') : null;
const flags = injected?.injectedProxyFlags(args) ?? null;
if (injected && flags) await injected.runInjectedProxy(flags);
else (await import('../dist/src/cli.js')).main(process.argv);
