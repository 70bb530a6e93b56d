// Watch streams: newline-delimited JSON events over a chunked 200 response, replayed from the store's bounded history.
import type { ServerResponse } from 'node:http';
import { apiVersionOf, type ResourceType } from './resources.js';
import type { Matcher } from './selectors.js';
import type { ObjectStore, StoreEvent } from './store.js';
import { errors, type JsonObject, type KubeObject } from './types.js';

export interface WatchRequest {
  rt: ResourceType;
  version: string;
  /** Undefined watches all namespaces. */
  ns?: string;
  match: Matcher;
  resourceVersion?: string;
  allowBookmarks: boolean;
  sendInitialEvents: boolean;
  timeoutSeconds?: number;
}

type WatchType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

interface Stream {
  res: ServerResponse;
  rt: ResourceType;
  bookmark(): void;
  end(abrupt: boolean): void;
}

export class WatchHub {
  private readonly streams = new Set<Stream>();

  constructor(
    private readonly store: ObjectStore,
    private readonly bookmarkIntervalMs: number,
  ) {
    store.onResourceRemoved((rt) => {
      for (const s of this.streams) if (s.rt.crdName === rt.crdName && rt.crdName) s.end(false);
    });
  }

  get openCount(): number {
    return this.streams.size;
  }

  /** Ends every open watch: gracefully (clients see the stream end and resume) or abruptly (socket destroyed). */
  cutAll(abrupt = false): void {
    for (const s of [...this.streams]) s.end(abrupt);
  }

  /** Sends a BOOKMARK now on every watch that allowed them. */
  bookmarkAll(): void {
    for (const s of this.streams) s.bookmark();
  }

  /** Validates the request and either answers an error Status (thrown) or starts streaming. */
  start(res: ServerResponse, w: WatchRequest): void {
    const rvParam = w.resourceVersion ?? '';
    if (rvParam !== '' && !/^\d+$/.test(rvParam)) {
      throw errors.invalid('ListOptions', 'meta.k8s.io', '', [{ reason: 'FieldValueInvalid', field: 'resourceVersion', message: `Invalid value: "${rvParam}": must be a non-negative integer` }]);
    }
    const store = this.store;
    const apiVersion = apiVersionOf(w.rt, w.version);
    const visible = (o: KubeObject) => (w.ns === undefined || o.metadata.namespace === w.ns) && w.match(o);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();

    const send = (type: WatchType, object: JsonObject) => {
      if (!res.writableEnded && !res.destroyed) res.write(JSON.stringify({ type, object }) + '\n');
    };
    const sendObject = (type: WatchType, o: KubeObject) => send(type, store.present(w.rt, o, w.version));
    const bookmarkObject = (annotations?: Record<string, string>): JsonObject => ({
      kind: w.rt.kind, apiVersion, metadata: { resourceVersion: String(store.resourceVersion), ...(annotations ? { annotations } : {}) },
    });
    const onEvent = (e: StoreEvent) => {
      if (e.group !== w.rt.group || e.plural !== w.rt.plural) return;
      // Selector transitions look like additions and deletions to the watcher, as on a real server.
      const now = visible(e.object);
      const before = e.prev !== undefined && e.type !== 'ADDED' && visible(e.prev);
      if (e.type === 'ADDED' && now) sendObject('ADDED', e.object);
      else if (e.type === 'DELETED' && (now || before)) sendObject('DELETED', e.object);
      else if (e.type === 'MODIFIED' && now) sendObject(before ? 'MODIFIED' : 'ADDED', e.object);
      else if (e.type === 'MODIFIED' && before) sendObject('DELETED', e.object);
    };

    let timer: NodeJS.Timeout | undefined;
    let bookmarkTimer: NodeJS.Timeout | undefined;
    let unsubscribe = () => {};
    const stream: Stream = {
      res,
      rt: w.rt,
      bookmark: () => {
        if (w.allowBookmarks) send('BOOKMARK', bookmarkObject());
      },
      end: (abrupt) => {
        cleanup();
        if (abrupt) res.socket?.destroy();
        else res.end();
      },
    };
    const cleanup = () => {
      unsubscribe();
      clearTimeout(timer);
      clearInterval(bookmarkTimer);
      this.streams.delete(stream);
    };
    // The response closes when we end it or the client goes away (IncomingMessage 'close' is not a disconnect signal).
    res.on('close', cleanup);

    if (rvParam === '' || rvParam === '0') {
      // "Get state and start at most recent": synthetic ADDED events for what exists now.
      for (const o of store.list(w.rt, w.ns)) if (w.match(o)) sendObject('ADDED', o);
      if (w.sendInitialEvents && w.allowBookmarks) send('BOOKMARK', bookmarkObject({ 'k8s.io/initial-events-end': 'true' }));
    } else {
      const replay = store.eventsSince(Number(rvParam));
      if (replay === 'expired') {
        const gone = errors.expired(`too old resource version: ${rvParam} (${store.oldestAvailableRv})`);
        send('ERROR', gone.toStatus());
        res.end();
        return;
      }
      replay.forEach(onEvent);
    }
    unsubscribe = store.subscribe(onEvent);
    this.streams.add(stream);
    if (w.timeoutSeconds !== undefined && w.timeoutSeconds > 0) {
      timer = setTimeout(() => {
        stream.bookmark();
        stream.end(false);
      }, w.timeoutSeconds * 1000);
    }
    if (w.allowBookmarks && this.bookmarkIntervalMs > 0) bookmarkTimer = setInterval(() => stream.bookmark(), this.bookmarkIntervalMs);
  }
}
