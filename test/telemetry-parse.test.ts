// The Prometheus text format parser, table-driven: what proxies (and other exporters) write.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isCounter, parseExposition, parseValue, type Sample } from '../src/control/telemetry/parse.js';

const one = (text: string): Sample => {
  const { samples } = parseExposition(text);
  assert.equal(samples.length, 1, `one sample in ${JSON.stringify(text)}`);
  return samples[0]!;
};

describe('the Prometheus text parser', () => {
  const cases: { name: string; input: string; expected: Sample }[] = [
    { name: 'a bare sample', input: 'up 1', expected: { name: 'up', labels: {}, value: 1 } },
    { name: 'labels', input: 'request_total{namespace="default",deployment="web-v1"} 42', expected: { name: 'request_total', labels: { namespace: 'default', deployment: 'web-v1' }, value: 42 } },
    { name: 'empty braces', input: 'x{} 3', expected: { name: 'x', labels: {}, value: 3 } },
    { name: 'a trailing comma', input: 'x{a="1",} 3', expected: { name: 'x', labels: { a: '1' }, value: 3 } },
    { name: 'spaces around labels', input: 'x{ a = "1" , b="2" } 3', expected: { name: 'x', labels: { a: '1', b: '2' }, value: 3 } },
    { name: 'escaped quote, backslash and newline', input: 'x{a="say \\"hi\\"",b="c:\\\\dir",c="two\\nlines"} 1', expected: { name: 'x', labels: { a: 'say "hi"', b: 'c:\\dir', c: 'two\nlines' }, value: 1 } },
    { name: 'a comma and braces inside a value', input: 'x{a="1,2}",b="{"} 1', expected: { name: 'x', labels: { a: '1,2}', b: '{' }, value: 1 } },
    { name: 'an le label of +Inf', input: 'h_bucket{le="+Inf"} 7', expected: { name: 'h_bucket', labels: { le: '+Inf' }, value: 7 } },
    { name: 'a float', input: 'x 0.125', expected: { name: 'x', labels: {}, value: 0.125 } },
    { name: 'an exponent', input: 'x 1.5e3', expected: { name: 'x', labels: {}, value: 1500 } },
    { name: 'a negative number', input: 'x -2', expected: { name: 'x', labels: {}, value: -2 } },
    { name: '+Inf', input: 'x +Inf', expected: { name: 'x', labels: {}, value: Infinity } },
    { name: '-Inf', input: 'x -Inf', expected: { name: 'x', labels: {}, value: -Infinity } },
    { name: 'a timestamp', input: 'x{a="b"} 5 1700000000000', expected: { name: 'x', labels: { a: 'b' }, value: 5, timestampMs: 1700000000000 } },
    { name: 'colons in a name', input: 'job:rate:5m 2', expected: { name: 'job:rate:5m', labels: {}, value: 2 } },
    { name: 'tabs and CRLF', input: 'x\t4\r', expected: { name: 'x', labels: {}, value: 4 } },
    { name: 'a large counter', input: 'tcp_read_bytes_total 1.8446744073709552e+19', expected: { name: 'tcp_read_bytes_total', labels: {}, value: 1.8446744073709552e19 } },
  ];
  for (const c of cases) {
    it(`parses ${c.name}`, () => assert.deepEqual(one(c.input), c.expected));
  }

  it('parses NaN', () => assert.ok(Number.isNaN(one('x NaN').value)));

  it('skips HELP, other comments and blank lines, and records TYPE', () => {
    const exp = parseExposition([
      '# HELP request_total Total count of HTTP requests.',
      '# TYPE request_total counter',
      '',
      '# a free comment',
      'request_total{a="1"} 1',
      '# TYPE response_latency_ms histogram',
      'response_latency_ms_bucket{le="1"} 1',
      'response_latency_ms_bucket{le="+Inf"} 2',
      'response_latency_ms_sum 3.5',
      'response_latency_ms_count 2',
      '# TYPE tcp_open_connections gauge',
      'tcp_open_connections 4',
    ].join('\n'));
    assert.equal(exp.samples.length, 6);
    assert.equal(exp.types.get('request_total'), 'counter');
    assert.equal(exp.types.get('response_latency_ms'), 'histogram');
    assert.equal(exp.types.get('tcp_open_connections'), 'gauge');
  });

  it('tells counters (and histogram series) from gauges', () => {
    const { types } = parseExposition('# TYPE h histogram\n# TYPE g gauge\n# TYPE c counter\n');
    const rows: [string, boolean][] = [['h_bucket', true], ['h_sum', true], ['h_count', true], ['g', false], ['c', true], ['untyped_total', true], ['untyped', false]];
    for (const [name, counter] of rows) assert.equal(isCounter(name, types), counter, name);
  });

  const bad: { input: string; error: RegExp }[] = [
    { input: 'x', error: /line 1: no value for x/ },
    { input: 'x{a="1"}', error: /no value/ },
    { input: '{a="1"} 1', error: /starts with a metric name/ },
    { input: 'x{a=1} 1', error: /quoted value/ },
    { input: 'x{a="1" 1', error: /expected ',' or '}'/ },
    { input: 'x{a="1} 1', error: /unterminated/ },
    { input: 'x{a="\\q"} 1', error: /bad escape/ },
    { input: 'x{a="1",a="2"} 1', error: /appears twice/ },
    { input: 'x{1a="1"} 1', error: /bad label name/ },
    { input: 'x one', error: /'one' is not a number/ },
    { input: 'x 0x10', error: /not a number/ },
    { input: 'x 1 2 3', error: /unexpected text/ },
    { input: 'x 1 soon', error: /timestamp 'soon'/ },
    { input: 'ok 1\n# TYPE y wobbly', error: /line 2: unknown metric type 'wobbly'/ },
  ];
  for (const c of bad) {
    it(`refuses ${JSON.stringify(c.input)} with the line and the reason`, () => {
      assert.throws(() => parseExposition(c.input), c.error);
    });
  }

  it('reads special values as Prometheus writes them', () => {
    assert.equal(parseValue('+Inf'), Infinity);
    assert.equal(parseValue('-Inf'), -Infinity);
    assert.equal(parseValue('.5'), 0.5);
    assert.throws(() => parseValue(''), /not a number/);
  });
});
