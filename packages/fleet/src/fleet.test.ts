import { describe, expect, it } from 'vitest';
import {
  createStateKeys,
  encodePayload,
  NODE_RECORD_STATUSES,
  type NodeInfo,
  type NodeRecord,
} from '@ginkgo-live/state-keys';
import {
  decodeNodeSnapshot,
  nodeStatus,
  QUEUE_THRESHOLDS,
  queueLevel,
  statusOfRecord,
  type RawNodeReplies,
} from './index.ts';

const keys = createStateKeys('');
const NOW = Date.parse('2026-01-01T00:00:10.000Z');

const beat = (sentAt = '2026-01-01T00:00:08.000Z') =>
  encodePayload('heartbeat', { _v: 1, node_id: 'n1', sent_at: sentAt, seq: 3 });

const info = (status: NodeInfo['status'] = 'running'): NodeInfo => ({
  _v: 1,
  node_id: 'n1',
  host: 'h',
  pid: 42,
  version: '0.1.0',
  status,
  started_at: '2026-01-01T00:00:00.000Z',
  uptime_seconds: 10,
  last_heartbeat: '2026-01-01T00:00:08.000Z',
  portfolio_ids: ['p1'],
  portfolio_count: 1,
  capacity: 5,
  queue_usage_max: 0.1,
  queue_usage: { p1: 0.1 },
  events_per_second: 3,
  cpu_percent: 1,
  memory_rss_bytes: 1,
  heap_used_bytes: 1,
  redis: { healthy: true, consecutive_failures: 0, total_failures: 0, last_success_at: null },
});

const record = (status: NodeRecord['status']): NodeRecord => ({
  _v: 1,
  node_id: 'n1',
  status,
  capacity: 5,
  assigned_count: 1,
  last_seen: '2026-01-01T00:00:08.000Z',
});

const raw = (over: Partial<RawNodeReplies> = {}): RawNodeReplies => ({
  nodeId: 'n1',
  heartbeat: beat(),
  pttlMs: 12_000,
  info: encodePayload('nodeInfo', info()),
  record: encodePayload('nodeRecord', record('alive')),
  lastSeen: '1767225608000',
  ...over,
});

describe('nodeStatus: one status from a snapshot', () => {
  const alive = { alive: true };
  const dead = { alive: false };
  it('a live heartbeat without any drain is online, whatever the record lags behind', () => {
    expect(nodeStatus({ liveness: alive, info: null, record: null })).toBe('online');
    expect(nodeStatus({ liveness: alive, info: info('starting'), record: null })).toBe('online');
    expect(nodeStatus({ liveness: alive, info: info(), record: record('lost') })).toBe('online');
  });
  it('an operator drain (record) or the node stopping by itself (info) is draining', () => {
    expect(nodeStatus({ liveness: alive, info: info(), record: record('draining') })).toBe(
      'draining',
    );
    expect(nodeStatus({ liveness: alive, info: info('draining'), record: null })).toBe('draining');
    expect(nodeStatus({ liveness: alive, info: info('stopping'), record: record('alive') })).toBe(
      'draining',
    );
  });
  it('no live heartbeat is lost, whatever the record and the last info still say', () => {
    expect(nodeStatus({ liveness: dead, info: info(), record: record('alive') })).toBe('lost');
    expect(nodeStatus({ liveness: dead, info: null, record: record('draining') })).toBe('lost');
  });
  it('maps every record status to what nodeStatus gives when the heartbeat agrees with it', () => {
    const words = NODE_RECORD_STATUSES.map((s) => [
      s,
      statusOfRecord(s),
      nodeStatus({ liveness: { alive: s !== 'lost' }, info: null, record: record(s) }),
    ]);
    expect(words).toEqual([
      ['alive', 'online', 'online'],
      ['lost', 'lost', 'lost'],
      ['draining', 'draining', 'draining'],
    ]);
  });
});

describe('queueLevel: one set of thresholds', () => {
  it('warning from 70 %, critical from 95 %, full at 100 %', () => {
    expect(QUEUE_THRESHOLDS).toEqual({ warning: 0.7, critical: 0.95, full: 1 });
    expect([0, 0.69, 0.7, 0.94, 0.95, 0.99, 1, 1.2].map((u) => queueLevel(u))).toEqual([
      'ok',
      'ok',
      'warning',
      'warning',
      'critical',
      'critical',
      'full',
      'full',
    ]);
  });
  it('an unknown usage is unknown, not ok', () => {
    expect([null, undefined, Number.NaN, Infinity].map((u) => queueLevel(u))).toEqual([
      'unknown',
      'unknown',
      'unknown',
      'unknown',
    ]);
  });
  it('takes other thresholds when given', () => {
    expect(queueLevel(0.5, { warning: 0.5, critical: 0.8, full: 1 })).toBe('warning');
  });
});

describe('decodeNodeSnapshot: raw replies to a snapshot', () => {
  it('decodes heartbeat, info, record and registry score', () => {
    const s = decodeNodeSnapshot(keys, raw(), NOW);
    expect(s).toMatchObject({
      nodeId: 'n1',
      heartbeat: { key: keys.heartbeat('n1'), pttlMs: 12_000 },
      liveness: { alive: true, reason: 'beating', heartbeatAgeMs: 2_000 },
      info: { status: 'running', capacity: 5 },
      record: { status: 'alive' },
      lastSeenMs: 1_767_225_608_000,
      problems: [],
    });
    expect(nodeStatus(s)).toBe('online');
  });
  it('a heartbeat without TTL is not alive: lost', () => {
    const s = decodeNodeSnapshot(keys, raw({ pttlMs: -1 }), NOW);
    expect(s.liveness).toMatchObject({ alive: false, reason: 'heartbeat without TTL' });
    expect(nodeStatus(s)).toBe('lost');
  });
  it('malformed payloads are problems of the node, the rest is kept', () => {
    const s = decodeNodeSnapshot(
      keys,
      raw({ heartbeat: 'not json', info: '{"_v":1}', record: '{', lastSeen: null }),
      NOW,
    );
    expect(s.liveness.alive).toBe(true);
    expect(s.info).toBeNull();
    expect(s.record).toBeNull();
    expect(s.lastSeenMs).toBeNull();
    expect(s.problems.map((p) => [p.key, p.payload])).toEqual([
      [keys.heartbeat('n1'), 'heartbeat'],
      [keys.nodeInfo('n1'), 'nodeInfo'],
      [`${keys.executionNodes()}[n1]`, 'nodeRecord'],
    ]);
  });
});
