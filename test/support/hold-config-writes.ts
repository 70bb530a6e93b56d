// Loaded into a CLI process with --import (test/config-concurrency.test.ts): holds each write of a config
// document (PUT /v1/config/...) for HOLD_CONFIG_WRITES_MS after the CLI made it, so that concurrent writers line
// up between their read and their write. The CLI itself has no such hook.
import https from 'node:https';

const holdMs = Number(process.env.HOLD_CONFIG_WRITES_MS ?? 0);
const request = https.request;

(https as { request: typeof https.request }).request = function (this: unknown, ...args: unknown[]) {
  const req = (request as (...a: unknown[]) => ReturnType<typeof https.request>).apply(this, args);
  if (holdMs > 0 && req.method === 'PUT' && req.path.startsWith('/v1/config/')) {
    const end = req.end;
    req.end = function (this: typeof req, ...a: unknown[]) {
      setTimeout(() => (end as (...x: unknown[]) => unknown).apply(req, a), holdMs);
      return req;
    } as typeof req.end;
  }
  return req;
} as typeof https.request;

