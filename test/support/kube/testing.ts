// Small helpers for tests that drive the fake API server through @kubernetes/client-node.
import assert from 'node:assert/strict';
import { ApiException, KubeConfig, Watch } from '@kubernetes/client-node';
import type { FakeApiServer } from './fake-api-server.js';

export interface StatusBody {
  kind: string;
  apiVersion: string;
  status: string;
  message: string;
  reason: string;
  code: number;
  details?: { name?: string; group?: string; kind?: string; causes?: { reason: string; message: string; field?: string }[] };
}

export function kubeConfigFor(server: FakeApiServer): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(server.kubeconfigYaml);
  return kc;
}

/** Awaits a call expected to fail with an ApiException of the given HTTP code; returns the raw exception. */
export async function expectCode(call: Promise<unknown>, code: number): Promise<ApiException<unknown>> {
  try {
    await call;
  } catch (e) {
    if (!(e instanceof ApiException)) throw e;
    assert.equal(e.code, code, `expected HTTP ${code}, got ${e.code}: ${String(e.body)}`);
    return e;
  }
  assert.fail(`expected HTTP ${code}, but the call succeeded`);
}

/**
 * Awaits a call expected to fail with the given HTTP code; returns the parsed Status body. (The generated clients
 * drop the body of 401 responses; use expectCode for those.)
 */
export async function expectStatus(call: Promise<unknown>, code: number, reason?: string): Promise<StatusBody> {
  try {
    await call;
  } catch (e) {
    if (!(e instanceof ApiException)) throw e;
    assert.equal(e.code, code, `expected HTTP ${code}, got ${e.code}: ${String(e.body)}`);
    assert.equal(typeof e.body, 'string', 'the error carries a body');
    const status = JSON.parse(String(e.body)) as StatusBody;
    assert.equal(status.kind, 'Status');
    assert.equal(status.code, code);
    if (reason) assert.equal(status.reason, reason);
    return status;
  }
  assert.fail(`expected HTTP ${code}, but the call succeeded`);
}

/** Polls until check() returns a value other than undefined/false, failing after timeoutMs. */
export async function waitFor<T>(check: () => T | undefined | false, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export interface WatchEventRecord {
  type: string;
  name: string;
  resourceVersion: string;
  object: { metadata?: { name?: string; resourceVersion?: string; annotations?: Record<string, string> }; code?: number; reason?: string };
}

/** A client-node Watch that records events and how it ended; stop() aborts it. */
export class RecordedWatch {
  readonly events: WatchEventRecord[] = [];
  done = false;
  doneError: unknown = undefined;
  private controller?: AbortController;

  static async start(kc: KubeConfig, path: string, query: Record<string, string | number | boolean> = {}): Promise<RecordedWatch> {
    const w = new RecordedWatch();
    w.controller = await new Watch(kc).watch(path, query, (type, object: WatchEventRecord['object']) => {
      w.events.push({ type, name: object.metadata?.name ?? '', resourceVersion: object.metadata?.resourceVersion ?? '', object });
    }, (err) => {
      w.done = true;
      w.doneError = err;
    });
    return w;
  }

  /** Waits until at least n events arrived. */
  async waitForEvents(n: number, timeoutMs = 5000): Promise<WatchEventRecord[]> {
    await waitFor(() => this.events.length >= n, `${n} watch events (have ${this.events.map((e) => `${e.type} ${e.name}`).join(', ')})`, timeoutMs);
    return this.events;
  }

  async waitForDone(timeoutMs = 5000): Promise<unknown> {
    await waitFor(() => this.done, 'the watch to end', timeoutMs);
    return this.doneError;
  }

  stop(): void {
    this.controller?.abort();
  }
}
