import { describe, expect, it } from 'vitest';
import { decodePayload, encodePayload, PayloadDecoder, PayloadEncodeError } from './codec.ts';
import { SAMPLE_PAYLOADS } from './fixtures.test-support.ts';
import { PAYLOAD_SCHEMAS, type PayloadName } from './schemas.ts';

const names = Object.keys(PAYLOAD_SCHEMAS) as PayloadName[];

describe('payload round trips', () => {
  it.each(names)('encodes and decodes %s unchanged', (name) => {
    const raw = encodePayload(name, SAMPLE_PAYLOADS[name]);
    expect(decodePayload(name, 'k', raw)).toEqual({ ok: true, value: SAMPLE_PAYLOADS[name] });
  });

  it.each(names)('carries the version field _v in %s', (name) => {
    expect(JSON.parse(encodePayload(name, SAMPLE_PAYLOADS[name]))).toMatchObject({ _v: 1 });
  });
});

describe('decodePayload with malformed payloads', () => {
  const key = 'execution_node:n1:info';

  it('reports text that is not JSON, with the key', () => {
    expect(decodePayload('nodeInfo', key, '2026-11-28T06:00:00Z')).toEqual({
      ok: false,
      error: {
        key,
        payload: 'nodeInfo',
        problem: expect.stringMatching(/^not JSON/) as unknown,
        raw: '2026-11-28T06:00:00Z',
      },
    });
  });

  it('reports JSON that is not an object', () => {
    for (const raw of ['[]', '42', 'null', '"x"']) {
      expect(decodePayload('heartbeat', key, raw)).toMatchObject({
        ok: false,
        error: { problem: 'not a JSON object' },
      });
    }
  });

  it('reports a missing or unknown version', () => {
    const { _v, ...unversioned } = SAMPLE_PAYLOADS.heartbeat;
    expect(_v).toBe(1);
    expect(decodePayload('heartbeat', key, JSON.stringify(unversioned))).toMatchObject({
      ok: false,
      error: { problem: 'missing version field _v' },
    });
    expect(
      decodePayload('heartbeat', key, JSON.stringify({ ...SAMPLE_PAYLOADS.heartbeat, _v: 2 })),
    ).toMatchObject({
      ok: false,
      error: { problem: 'unsupported version _v=2; this reader knows _v=1' },
    });
  });

  it('names each wrong field', () => {
    const bad = { ...SAMPLE_PAYLOADS.nodeInfo, capacity: 0, status: 'dancing', pid: 'x' };
    const decoded = decodePayload('nodeInfo', key, JSON.stringify(bad));
    expect(decoded.ok).toBe(false);
    if (decoded.ok) return;
    expect(decoded.error.problem).toMatch(/pid: /);
    expect(decoded.error.problem).toMatch(/status: /);
    expect(decoded.error.problem).toMatch(/capacity: /);
  });

  it('reports an assignment whose status and node disagree', () => {
    const raw = JSON.stringify({ ...SAMPLE_PAYLOADS.assignment, status: 'orphaned' });
    expect(decodePayload('assignment', 'portfolio_assignments', raw)).toMatchObject({
      ok: false,
      error: {
        problem: expect.stringContaining(
          'node_id: an assigned portfolio names its node',
        ) as unknown,
      },
    });
  });

  it('keeps only the start of a long raw value', () => {
    const decoded = decodePayload('heartbeat', key, 'x'.repeat(10_000));
    expect(decoded.ok).toBe(false);
    if (!decoded.ok) expect(decoded.error.raw).toHaveLength(200);
  });

  it('never throws, whatever the input', () => {
    const inputs = ['', '{', '{"_v":1}', '{"__proto__":{"x":1},"_v":1}', '\u0000', '{"_v":"1"}'];
    for (const raw of inputs) {
      for (const name of names) {
        expect(() => decodePayload(name, key, raw)).not.toThrow();
        expect(decodePayload(name, key, raw).ok).toBe(false);
      }
    }
  });
});

describe('encodePayload', () => {
  it('refuses to write a payload that does not fit its schema', () => {
    const bad = { ...SAMPLE_PAYLOADS.portfolioState, queue_capacity: -1 };
    expect(() => encodePayload('portfolioState', bad)).toThrow(PayloadEncodeError);
    expect(() => encodePayload('portfolioState', bad)).toThrow(/queue_capacity/);
  });
});

describe('PayloadDecoder', () => {
  it('decodes a value once, answers repeats from memory, and decodes a changed value afresh', () => {
    const decoder = new PayloadDecoder();
    const raw = encodePayload('nodeRecord', SAMPLE_PAYLOADS.nodeRecord);
    const first = decoder.decode('nodeRecord', 'k', raw);
    expect(first).toEqual(decodePayload('nodeRecord', 'k', raw));
    expect(decoder.decode('nodeRecord', 'k', raw)).toBe(first);
    expect(decoder.stats()).toMatchObject({ hits: 1, misses: 1 });
    const changed = encodePayload('nodeRecord', { ...SAMPLE_PAYLOADS.nodeRecord, capacity: 99 });
    const second = decoder.decode('nodeRecord', 'k', changed);
    expect(second.ok && second.value.capacity).toBe(99);
    expect(decoder.stats()).toMatchObject({ hits: 1, misses: 2 });
  });

  it('remembers problems too, each under its own key', () => {
    const decoder = new PayloadDecoder();
    const a = decoder.decode('nodeRecord', 'a', '{"_v":1}');
    const b = decoder.decode('nodeRecord', 'b', '{"_v":1}');
    expect(a.ok || a.error.key).toBe('a');
    expect(b.ok || b.error.key).toBe('b');
    expect(decoder.decode('nodeRecord', 'a', '{"_v":1}')).toBe(a);
  });

  it('stays bounded: at most two generations of entries', () => {
    const decoder = new PayloadDecoder(10);
    for (let i = 0; i < 100; i++) decoder.decode('nodeRecord', `k${i}`, `{"_v":1,"n":${i}}`);
    expect(decoder.stats().entries).toBeLessThanOrEqual(20);
  });
});
