// Checks the control plane runs on each config document before storing it (PUT /v1/config/:kind
// answers 422 and stores nothing when one throws); one entry per kind.
import type { ControlServerOptions } from './server.js';
import { checkRouteConfig } from '../model/route.js';
import { checkPolicyConfig } from '../model/policy.js';

export const CONFIG_VALIDATORS: NonNullable<ControlServerOptions['validators']> = {
  routes: checkRouteConfig,
  policies: checkPolicyConfig,
};
