// A list then watch of one collection, kept in a local cache, as client-go's reflector does: the watch resumes from
// the last resourceVersion seen after a cut, and a 410 Gone (history compacted) starts over with a fresh list.
import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

export interface KubeItem {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface ListWatchOptions {
  log?: (line: string) => void;
  /** First retry delay after a failure; doubles up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
  /** Asks the server to end each watch after this long (it is then resumed); default 5 minutes. */
  timeoutSeconds?: number;
}

const keyOf = (o: KubeItem) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

/** GET a path with the kubeconfig's TLS and credentials; the parsed JSON body, or an error carrying the status. */
export async function getJson<T>(kc: KubeConfig, path: string): Promise<T> {
  const server = kc.getCurrentCluster()?.server ?? '';
  const url = new URL(server.replace(/\/+$/, '') + path);
  const opts: https.RequestOptions = { method: 'GET', headers: { Accept: 'application/json' } };
  await kc.applyToHTTPSOptions(opts);
  const request = url.protocol === 'http:' ? http.request : https.request;
  return new Promise((resolve, reject) => {
    const req = request(url, opts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) {
          let message = `HTTP ${res.statusCode}`;
          try {
            const b = JSON.parse(text) as { message?: string; error?: string };
            message = b.message ?? b.error ?? message;
          } catch {
            // not a Status body
          }
          return reject(Object.assign(new Error(`GET ${path}: ${message}`), { statusCode: res.statusCode, reason: message }));
        }
        try {
          resolve(JSON.parse(text) as T);
        } catch (err) {
          reject(err);
        }
      });
    });
    req.setTimeout(30_000, () => req.destroy(Object.assign(new Error('request timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end();
  });
}

export class ListWatch<T extends KubeItem> {
  /** The cache: namespace/name → object. */
  readonly items = new Map<string, T>();
  /** How many full lists ran (1 after start; more after 410 Gone). */
  lists = 0;
  /** How many watches were started (more than 1 after cuts). */
  watches = 0;
  private rv = '';
  private controller?: AbortController;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private lastFailure = '';
  private delay: number;
  private readonly log: (line: string) => void;

  constructor(
    private readonly kc: KubeConfig,
    /** The collection, e.g. /api/v1/pods or /apis/mesh.io/v1alpha1/routes. */
    readonly path: string,
    /** Called after the cache changed (a list, or a watch event). */
    private readonly onChange: () => void,
    private readonly o: ListWatchOptions = {},
  ) {
    this.delay = o.retryMs ?? 200;
    this.log = o.log ?? (() => {});
  }

  /** Lists once (throws when that fails), then watches in the background until stop(). */
  async start(): Promise<void> {
    try {
      await this.list();
    } catch (err) {
      // A kind that is not served yet (the CRDs come with 'mesh install --crds') is empty until it is.
      if ((err as { statusCode?: number }).statusCode !== 404) throw err;
      this.log(`watch ${this.path}: not served (are the CRDs installed?); trying again`);
      this.onChange();
      return this.relist();
    }
    void this.watch();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.controller?.abort();
  }

  private async list(): Promise<void> {
    const body = await getJson<{ metadata?: { resourceVersion?: string }; items?: T[] }>(this.kc, this.path);
    this.items.clear();
    for (const item of body.items ?? []) this.items.set(keyOf(item), item);
    this.rv = body.metadata?.resourceVersion ?? '';
    this.lists++;
    this.delay = this.o.retryMs ?? 200;
    this.lastFailure = '';
    this.onChange();
  }

  private retry(fn: () => Promise<void>, why: string): void {
    if (this.stopped) return;
    const wait = this.delay;
    this.delay = Math.min(this.delay * 2, this.o.maxRetryMs ?? 5000);
    // The same failure again (an API server down for a while) is said once.
    if (why && why !== this.lastFailure) this.log(`watch ${this.path}: ${why}; retrying`);
    this.lastFailure = why || this.lastFailure;
    this.timer = setTimeout(() => void fn().catch((err: unknown) => this.retry(fn, (err as Error).message)), wait);
  }

  /** After 410 Gone the cache may have missed deletions: list again, then watch from the new resourceVersion. */
  private relist(): void {
    this.retry(async () => {
      await this.list();
      await this.watch();
    }, '');
  }

  private async watch(): Promise<void> {
    if (this.stopped) return;
    const { Watch } = await import('@kubernetes/client-node');
    if (this.stopped) return;
    let gone = false;
    let started = false;
    const began = Date.now();
    this.watches++;
    const query = { resourceVersion: this.rv, allowWatchBookmarks: true, timeoutSeconds: this.o.timeoutSeconds ?? 300 };
    const controller = await new Watch(this.kc).watch(this.path, query, (type: string, obj: T & { code?: number; message?: string }) => {
      if (type === 'ERROR') {
        if (obj.code === 410) gone = true;
        else this.log(`watch ${this.path}: ${obj.message ?? 'error event'}`);
        return;
      }
      started = true;
      this.delay = this.o.retryMs ?? 200;
      this.lastFailure = '';
      if (obj.metadata?.resourceVersion) this.rv = obj.metadata.resourceVersion;
      if (type === 'BOOKMARK') return;
      if (type === 'DELETED') this.items.delete(keyOf(obj));
      else this.items.set(keyOf(obj), obj);
      this.onChange();
    }, (err: (Error & { statusCode?: number }) | null) => {
      if (this.stopped) return;
      if (gone || err?.statusCode === 410) return this.relist();
      // A cut (server closed or reset the stream, or the timeout passed): resume from the last resourceVersion.
      if (!err && (started || Date.now() - began > 1000)) return void this.watch().catch((e: unknown) => this.retry(() => this.watch(), (e as Error).message));
      // An error, or a stream that ended at once: back off so a failing server is not hammered.
      this.retry(() => this.watch(), err ? err.message : '');
    });
    this.controller = controller;
    // Stopped while the watch was being opened: stop() aborted the previous one, not this one.
    if (this.stopped) controller.abort();
  }
}
