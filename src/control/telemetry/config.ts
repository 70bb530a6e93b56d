// Telemetry settings shared by mesh install, mesh control and the control plane.
import { parseDuration } from '../../util/duration.js';
import { MeshError } from '../../util/errors.js';

export const DEFAULT_SCRAPE_INTERVAL_MS = 10_000;

/** A scrape interval from a flag: 250ms to 5m. */
export function parseScrapeInterval(text: string): number {
  let ms: number;
  try {
    ms = parseDuration(text, 'scrape interval');
  } catch (err) {
    throw new MeshError((err as Error).message, 'e.g. --scrape-interval 10s');
  }
  if (ms < 250 || ms > 300_000) throw new MeshError(`scrape interval ${text} is out of range`, 'use 250ms to 5m, e.g. --scrape-interval 10s');
  return ms;
}
