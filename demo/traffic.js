// traffic: plays the users of the demo, GETting $TARGET_URL $RATE times a second (default 1) so the
// mesh's metrics and routing have something to show. Errors are expected while things start or
// break; it backs off while the target is down and says so at most every 10 s.
import http from 'node:http';

const LOG_EVERY_MS = 10_000;
const REQUEST_TIMEOUT_MS = 10_000;
const MAX_BACKOFF_MS = 5000;

const target = parseTarget(process.env.TARGET_URL);
const rate = Number(process.env.RATE || 1);
if (!(rate > 0 && rate <= 1000)) fail(`RATE must be a number of requests per second in (0, 1000], got '${process.env.RATE}'`);
const interval = 1000 / rate;
// Bounds the requests in flight, so a target that accepts but never answers does not pile them up.
const maxInFlight = Math.max(1, Math.ceil(rate));

const agent = new http.Agent({ keepAlive: true, maxSockets: maxInFlight });
let inFlight = 0;
let failuresInARow = 0;
let sent = 0;
let failed = 0;
let lastLog = 0;
let timer;

console.log(`traffic: GET ${target.href} at ${rate}/s`);
tick();

function tick() {
  if (inFlight < maxInFlight) send();
  // Back off exponentially while every request fails, so a down target is not hammered.
  const delay = failuresInARow ? Math.max(interval, Math.min(MAX_BACKOFF_MS, 250 * 2 ** failuresInARow)) : interval;
  timer = setTimeout(tick, delay);
}

function send() {
  inFlight++;
  sent++;
  let settled = false;
  const done = (err) => {
    if (settled) return;
    settled = true;
    inFlight--;
    if (!err) {
      failuresInARow = 0;
      return;
    }
    failuresInARow++;
    failed++;
    const now = Date.now();
    if (now - lastLog >= LOG_EVERY_MS) {
      lastLog = now;
      console.log(`traffic: ${failed} of ${sent} requests failed so far; last: ${err.message}`);
    }
  };
  const req = http.get(target, { agent, headers: { 'user-agent': 'mesh-demo-traffic' } }, (res) => {
    res.resume();
    res.on('end', () => done(res.statusCode >= 500 ? new Error(`status ${res.statusCode}`) : undefined));
    res.on('error', done);
  });
  req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS / 1000} s`)));
  req.on('error', done);
}

function parseTarget(raw) {
  let url;
  try {
    url = new URL(raw ?? '');
  } catch {
    fail(`set TARGET_URL to the http:// URL to load, got '${raw ?? ''}'`);
  }
  if (url.protocol !== 'http:') fail(`TARGET_URL must be an http:// URL, got '${raw}'`);
  return url;
}

function fail(msg) {
  console.error(`traffic: ${msg}`);
  process.exit(1);
}

const stop = () => {
  clearTimeout(timer);
  agent.destroy();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
