import { PAYLOAD_SCHEMAS, PAYLOAD_VERSION, type Payload, type PayloadName } from './schemas.ts';

/** What is wrong with a payload read from Redis: which key, which payload, what. */
export interface PayloadProblem {
  key: string;
  payload: PayloadName;
  problem: string;
  /** The start of the raw value (at most 200 characters), for the operator. */
  raw: string;
}

/** A decoded payload, or the problem with it as a value: decoding never throws. */
export type Decoded<T> = { ok: true; value: T } | { ok: false; error: PayloadProblem };

const RAW_PREVIEW = 200;

/**
 * Decodes the value of `key` as payload `name`: JSON, a supported `_v`, then the schema. A
 * malformed value comes back as `{ ok: false, error }` naming the key and what is wrong, so a
 * reader can report it beside the rest of its answer instead of failing the whole read.
 */
export function decodePayload<N extends PayloadName>(
  name: N,
  key: string,
  raw: string,
): Decoded<Payload<N>> {
  const fail = (problem: string): Decoded<Payload<N>> => ({
    ok: false,
    error: { key, payload: name, problem, raw: raw.slice(0, RAW_PREVIEW) },
  });
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    return fail(`not JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    return fail('not a JSON object');
  }
  const v = (json as { _v?: unknown })._v;
  if (v === undefined) return fail('missing version field _v');
  if (v !== PAYLOAD_VERSION) {
    return fail(
      `unsupported version _v=${JSON.stringify(v)}; this reader knows _v=${PAYLOAD_VERSION}`,
    );
  }
  const parsed = PAYLOAD_SCHEMAS[name].safeParse(json);
  if (!parsed.success) {
    return fail(
      parsed.error.issues
        .map(
          (issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(root)'}: ${issue.message}`,
        )
        .join('; '),
    );
  }
  return { ok: true, value: parsed.data as Payload<N> };
}

/** Thrown by `encodePayload` for a value that does not fit its schema: a bug in the writer. */
export class PayloadEncodeError extends Error {
  override readonly name = 'PayloadEncodeError';
}

/**
 * Validates `value` against payload `name` and serialises it. Writers call this, so nothing
 * malformed reaches Redis from our own code; an invalid value throws (it is a bug, not input).
 */
export function encodePayload<N extends PayloadName>(name: N, value: Payload<N>): string {
  const parsed = PAYLOAD_SCHEMAS[name].safeParse(value);
  if (!parsed.success) {
    throw new PayloadEncodeError(
      `Invalid ${name} payload: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  return JSON.stringify(parsed.data);
}

/**
 * `decodePayload` with a memory of the last answer per key, for readers that decode the same
 * values again and again (the gateway reads every node's payloads at each request; most have not
 * changed since the last one). A key whose raw value differs from the remembered one is decoded
 * afresh. Bounded: two generations of at most `maxEntries` keys each; a key not read for a
 * generation is forgotten. The same decoded object is handed out again: callers must not mutate it.
 */
export class PayloadDecoder {
  private current = new Map<string, { raw: string; decoded: Decoded<unknown> }>();
  private previous = new Map<string, { raw: string; decoded: Decoded<unknown> }>();
  private hitCount = 0;
  private missCount = 0;

  constructor(private readonly maxEntries = 50_000) {}

  decode<N extends PayloadName>(name: N, key: string, raw: string): Decoded<Payload<N>> {
    const cacheKey = `${name}\u0000${key}`;
    let entry = this.current.get(cacheKey);
    if (entry === undefined) {
      entry = this.previous.get(cacheKey);
      if (entry !== undefined) this.remember(cacheKey, entry);
    }
    if (entry?.raw === raw) {
      this.hitCount += 1;
      return entry.decoded as Decoded<Payload<N>>;
    }
    this.missCount += 1;
    const decoded = decodePayload(name, key, raw);
    this.remember(cacheKey, { raw, decoded });
    return decoded;
  }

  /** Hits and misses since creation, and keys remembered. */
  stats(): { hits: number; misses: number; entries: number } {
    return {
      hits: this.hitCount,
      misses: this.missCount,
      entries: this.current.size + this.previous.size,
    };
  }

  private remember(cacheKey: string, entry: { raw: string; decoded: Decoded<unknown> }): void {
    if (!this.current.has(cacheKey) && this.current.size >= this.maxEntries) {
      this.previous = this.current;
      this.current = new Map();
    }
    this.current.set(cacheKey, entry);
  }
}
