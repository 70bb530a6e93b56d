// Fixed inputs for the Kubernetes tests: the same certificates every run, so renderings are golden-stable.
import type { InjectOptions } from '../../src/platform/kubernetes/inject.js';
import { fixture } from './golden.js';

export const injectOpts = (): InjectOptions => ({
  version: '0.0.0-test', image: 'ghcr.io/mesh/mesh:0.0.0-test', trustDomain: 'cluster.local', trustAnchorsPem: fixture('kube', 'anchor.crt'),
});
