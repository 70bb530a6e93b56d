// The hostile-input corpus against every side of a sidecar: the outbound listener, the inbound port over mutual TLS
// with HTTP/1.1 and with mesh/1, and the inbound port taking plaintext (Kubernetes). An oracle compares what the app
// saw (every byte logged by the backend) with what the client's bytes mean to an independent parser (llhttp): the app
// never sees a request the client did not send as one, a body of another length, an identity the proxy did not set,
// a denied path, or bytes it cannot parse; the classes that must be refused are answered 4xx and reach nobody.
// Each side has a bed of its own, so the four run side by side.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { makeCerts, SIDES, startBed, type Bed, type Side } from './support/hostile/bed.js';
import { corpus } from './support/hostile/corpus.js';
import { runCase, type Late } from './support/hostile/drive.js';
import { reference, type Meaning } from './support/hostile/oracle.js';

describe('the hostile-input corpus', { concurrency: SIDES.length }, () => {
  const beds = new Map<Side, Bed>();
  const cases = corpus();
  const meant = new Map<string, Meaning>();
  before(async () => {
    const certs = await makeCerts();
    for (const side of SIDES) beds.set(side, await startBed(certs));
    for (const c of cases) meant.set(c.name, await reference(Buffer.from(c.bytes, 'latin1')));
  });
  after(async () => {
    for (const bed of beds.values()) await bed.close();
  });

  it(`has hundreds of distinct cases (${cases.length})`, () => {
    assert.ok(cases.length >= 300, String(cases.length));
    assert.equal(new Set(cases.map((c) => c.name)).size, cases.length, 'case names are unique');
  });

  // A request answered at once (denied, or for a service not in the mesh) whose body then turns out malformed: the
  // connection ends, with no second, unsolicited answer.
  for (const [side, head] of [
    ['outbound', 'POST /ok/x HTTP/1.1\r\nHost: nosuch\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ['inbound-tls', 'POST /denied/x HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n'],
  ] as [Side, string][]) {
    it(`answers a request once when its body turns out malformed after the answer (${side})`, async () => {
      const r = await runCase(beds.get(side)!, side, Buffer.from(`${head}3\r\nabc\r\nzz\r\n\r\nGET /ok/after HTTP/1.1\r\nHost: web\r\n\r\n`, 'latin1'));
      assert.equal(r.outcome.statuses.length, 1, JSON.stringify(r.outcome.statuses));
      assert.ok(r.outcome.statuses[0]! >= 400);
    });
  }

  for (const side of SIDES) {
    it(`smuggles, spoofs and bypasses nothing through the ${side} side`, { timeout: 120_000 }, async () => {
      const bed = beds.get(side)!;
      const faults: string[] = [];
      let timedOut = 0;
      let late: Late | undefined;
      for (const c of cases) {
        const from = bed.backend.seen.length;
        const r = await runCase(bed, side, Buffer.from(c.bytes, 'latin1'), meant.get(c.name), late);
        late = r.late;
        if (r.outcome.timedOut) timedOut++;
        for (const f of r.faults) faults.push(`${c.name}: ${f}`);
        if (c.refuse) {
          const first = r.outcome.statuses[0];
          if (first !== undefined && (first < 400 || first >= 500)) faults.push(`${c.name}: answered ${first}, not refused`);
          if (bed.backend.seen.length > from) faults.push(`${c.name}: reached the app, not refused`);
        }
      }
      assert.deepEqual(faults, [], `${faults.length} faults on the ${side} side`);
      assert.ok(timedOut < cases.length / 4, `${timedOut} cases ran into the deadline`);
    });
  }
});
