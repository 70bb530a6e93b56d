// Keeps the proxy's view of the mesh: a long-poll watch on the control plane's snapshots, cached on
// disk so a proxy restarted while the control plane is away starts from the last one it saw.
import { EventEmitter } from 'node:events';
import type { Snapshot } from '../model/snapshot.js';
import { readJson, writeJsonAtomic } from '../util/fs.js';
import type { ControlClient } from '../api/client.js';

export class ConfigWatcher extends EventEmitter {
  snapshot: Snapshot | null = null;
  connected = false;
  private stopped = false;
  private wake: (() => void) | null = null;

  constructor(
    private readonly client: ControlClient,
    private readonly cacheFile: string | undefined,
    private readonly log: (msg: string) => void = () => {},
  ) {
    super();
  }

  /** The cached snapshot, if any; applied before the first answer from the control plane. */
  loadCache(): Snapshot | null {
    if (!this.cacheFile) return null;
    try {
      const s = readJson<Snapshot>(this.cacheFile, 'cached config');
      if (s && Array.isArray(s.services)) this.apply(s, false);
    } catch {
      // A corrupt cache is replaced by the next snapshot.
    }
    return this.snapshot;
  }

  start(): void {
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  private apply(s: Snapshot, persist: boolean): void {
    this.snapshot = s;
    if (persist && this.cacheFile) {
      try {
        writeJsonAtomic(this.cacheFile, s);
      } catch (err) {
        this.log(`cannot cache config: ${(err as Error).message}`);
      }
    }
    this.emit('snapshot', s);
  }

  private async loop(): Promise<void> {
    let backoff = 250;
    while (!this.stopped) {
      try {
        const since = this.snapshot?.version ?? '';
        const { status, body } = await this.client.request<Snapshot>('GET', `/v1/watch?since=${encodeURIComponent(since)}`, undefined, { timeoutMs: 30_000 });
        if (this.stopped) return;
        if (!this.connected) {
          this.connected = true;
          this.log('connected to the control plane');
          this.emit('connected');
        }
        backoff = 250;
        if (status === 200 && body && Array.isArray(body.services)) this.apply(body, true);
        else if (status !== 204) throw new Error(`watch answered HTTP ${status}`);
      } catch (err) {
        if (this.stopped) return;
        if (this.connected) {
          this.connected = false;
          this.log(`lost the control plane (${(err as Error).message}); keeping the last config`);
          this.emit('disconnected');
        }
        await new Promise<void>((r) => {
          const t = setTimeout(r, backoff);
          this.wake = () => {
            clearTimeout(t);
            r();
          };
        });
        backoff = Math.min(backoff * 2, 2000);
      }
    }
  }
}
