// The gRPC test app's client (test/fixtures/grpc-app.mjs, meshtest.Echo on @grpc/grpc-js): a channel to a
// sidecar's outbound listener with the service as its authority, and a unary call that reports how it ended.
import { join } from 'node:path';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { ROOT, request, waitFor } from './mesh.js';

export const GRPC_APP = join(ROOT, 'test', 'fixtures', 'grpc-app.mjs');
export const ECHO_PROTO = join(ROOT, 'test', 'fixtures', 'echo.proto');
const MiB = 1024 * 1024;

export interface Msg {
  text?: string;
  data?: Buffer;
  n?: number;
  who?: string;
}

/* eslint-disable @typescript-eslint/no-explicit-any */
export type EchoClient = grpc.Client & Record<string, (...args: any[]) => any>;

/** A meshtest.Echo client on `outbound` (a sidecar's host:port) for `service`. */
export function echoClient(outbound: string, service: string): EchoClient {
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(ECHO_PROTO, { defaults: true })) as any;
  return new pkg.meshtest.Echo(outbound, grpc.credentials.createInsecure(), {
    'grpc.default_authority': service,
    'grpc.max_receive_message_length': 64 * MiB,
    'grpc.max_send_message_length': 64 * MiB,
  });
}

export interface Unary {
  reply: Msg | null;
  err: grpc.ServiceError | null;
  headers: grpc.Metadata | null;
  status: grpc.StatusObject;
}

/** One Say call; resolves with its reply, header metadata and status however it ended. */
export function say(c: EchoClient, req: Msg, o: { md?: grpc.Metadata; deadlineMs?: number } = {}): Promise<Unary> {
  return new Promise((resolve) => {
    let reply: Msg | null = null;
    let err: grpc.ServiceError | null = null;
    let headers: grpc.Metadata | null = null;
    const opts: grpc.CallOptions = o.deadlineMs ? { deadline: Date.now() + o.deadlineMs } : {};
    const call = c.say(req, o.md ?? new grpc.Metadata(), opts, (e: grpc.ServiceError | null, r: Msg) => {
      err = e;
      reply = r ?? null;
    });
    call.on('metadata', (m: grpc.Metadata) => (headers = m));
    call.on('status', (status: grpc.StatusObject) => setImmediate(() => resolve({ reply, err, headers, status })));
  });
}

/** Resolves once Say calls were answered by `n` different servers, told apart by `by` (default: the instance). */
export async function untilAnsweredBy(c: EchoClient, n: number, by: (who: string) => string = (who) => who): Promise<void> {
  const seen = new Set<string>();
  await waitFor(`calls to reach ${n} servers`, async () => {
    const u = await say(c, { text: 'hello' });
    if (u.reply?.who) seen.add(by(u.reply.who));
    return seen.size === n;
  }, 30_000, 50);
}

/**
 * response_total of gRPC responses (those with a grpc_status) on the given sidecars, summed by the values of
 * `by` and then grpc_status, joined with spaces: by ['direction', 'status_code'] gives keys like 'outbound 503 14'.
 */
export async function grpcCounts(admins: string[], by: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const admin of admins) {
    const body = (await request(admin, { path: '/metrics' })).body;
    for (const [, labels, n] of body.matchAll(/^response_total\{([^}]*)\} (\S+)$/gm)) {
      const g = /grpc_status="(\d+)"/.exec(labels!);
      if (!g) continue;
      const key = [...by.map((l) => new RegExp(`${l}="([^"]*)"`).exec(labels!)?.[1] ?? ''), g[1]].join(' ');
      out.set(key, (out.get(key) ?? 0) + Number(n));
    }
  }
  return out;
}
