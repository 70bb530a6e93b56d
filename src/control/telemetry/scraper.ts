// Scrapes every registered proxy's /metrics on a fixed interval into the MetricStore.
import http from 'node:http';
import { parseExposition } from './parse.js';
import { targetLabels, type ScrapeTarget } from './source.js';
import type { MetricStore } from './store.js';

export interface ScraperOptions {
  intervalMs: number;
  /** Per scrape; defaults to the interval (at most 5 s). */
  timeoutMs?: number;
  /** Largest /metrics body accepted. */
  maxBytes?: number;
  log?: (msg: string) => void;
}

export class Scraper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1, timeout: 60_000 });
  private readonly failing = new Set<string>();

  constructor(
    private readonly targets: () => ScrapeTarget[],
    private readonly store: MetricStore,
    private readonly o: ScraperOptions,
  ) {}

  start(): void {
    if (this.timer) return;
    void this.tick();
    this.timer = setInterval(() => void this.tick(), this.o.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
    this.agent.destroy();
  }

  private async tick(): Promise<void> {
    // A round that overruns the interval makes the next one wait rather than pile up.
    if (this.running) return;
    this.running = this.scrapeOnce().finally(() => (this.running = undefined));
    await this.running;
  }

  /** One round: every target concurrently, then the round closes at the time the last answered. */
  async scrapeOnce(): Promise<void> {
    const list = this.targets().filter((t) => t.admin);
    await Promise.all(list.map(async (t) => {
      const key = `${t.namespace}/${t.pod}`;
      const labels = targetLabels(t);
      try {
        const body = await this.fetch(t.admin);
        const at = Date.now();
        this.store.ingest(key, labels, parseExposition(body), at);
        this.failing.delete(key);
      } catch (err) {
        const msg = (err as Error).message;
        this.store.fail(key, labels, msg);
        if (!this.failing.has(key)) this.o.log?.(`telemetry: scraping ${key} at ${t.admin} failed: ${msg}`);
        this.failing.add(key);
      }
    }));
    this.store.completeRound(Date.now());
  }

  private fetch(admin: string): Promise<string> {
    const i = admin.lastIndexOf(':');
    const timeout = this.o.timeoutMs ?? Math.min(this.o.intervalMs, 5000);
    const max = this.o.maxBytes ?? 8 * 1024 * 1024;
    return new Promise((resolve, reject) => {
      const req = http.get({ host: admin.slice(0, i), port: Number(admin.slice(i + 1)), path: '/metrics', agent: this.agent }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return reject(new Error(`HTTP ${res.statusCode}`));
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > max) req.destroy(new Error(`metrics over ${max} bytes`));
          else chunks.push(c);
        });
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        res.on('error', reject);
      });
      req.setTimeout(timeout, () => req.destroy(new Error(`no answer within ${timeout} ms`)));
      req.on('error', reject);
    });
  }
}
