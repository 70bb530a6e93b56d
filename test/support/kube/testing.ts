// Small helpers for tests that drive the fake API server through @kubernetes/client-node.
import assert from 'node:assert/strict';
import { ApiException, KubeConfig, Watch } from '@kubernetes/client-node';
import type { FakeApiServer } from './fake-api-server.js';
import { waitFor } from '../mesh.js';

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
    await waitFor(`${n} watch events (have ${this.events.map((e) => `${e.type} ${e.name}`).join(', ')})`, () => this.events.length >= n, timeoutMs, 5);
    return this.events;
  }

  async waitForDone(timeoutMs = 5000): Promise<unknown> {
    await waitFor('the watch to end', () => this.done, timeoutMs, 5);
    return this.doneError;
  }

  stop(): void {
    this.controller?.abort();
  }
}
