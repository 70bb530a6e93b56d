// Loaded into a CLI process with --import (test/config-concurrency.test.ts): holds each write of a config
// document (PUT /v1/config/...) for HOLD_CONFIG_WRITES_MS before the CLI sends it, so that concurrent writers line
// up between their read and their write. The CLI itself has no such hook; this wraps the one control API client
// (the module the CLI loads, by the same URL).
import { ControlClient } from '../../src/api/client.js';

const holdMs = Number(process.env.HOLD_CONFIG_WRITES_MS ?? 0);
const request = ControlClient.prototype.request;

ControlClient.prototype.request = function <T>(this: ControlClient, method: string, path: string, ...rest: unknown[]) {
  const send = () => (request as (...a: unknown[]) => ReturnType<typeof request<T>>).call(this, method, path, ...rest);
  if (holdMs > 0 && method === 'PUT' && path.startsWith('/v1/config/')) return new Promise((r) => setTimeout(r, holdMs)).then(send);
  return send();
} as typeof ControlClient.prototype.request;
