import { chromium, type Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { statusOfRecord } from '@ginkgo-live/fleet';
import { decodePayload } from '@ginkgo-live/state-keys';
import { StackFixture, waitFor } from '@ginkgo-live/testing';

/**
 * One node, every surface, one word: the scheduler's record (its `alive | draining | lost` in the
 * fleet's words through `statusOfRecord`), `/api/nodes/:id`, `/api/nodes`, the node's row of
 * `/api/overview` and of the operations page (Debian's headless Chromium), on the real apps as
 * processes (scheduler, two nodes, gateway) and a real Redis. The record is the slowest surface (one
 * scheduler tick behind the heartbeat): each step waits for it, then reads all and compares.
 */
let browser: Browser;
let fx: StackFixture;

beforeAll(async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});
afterAll(async () => {
  await browser.close();
});

beforeEach(async () => {
  fx = await StackFixture.start();
});
afterEach(() => fx.close());

describe('a node has the same status in the scheduler, the API and the overview', () => {
  it('online, drained by an operator, then killed: the same word on every surface at each step', async () => {
    for (const id of ['p1', 'p2']) await fx.addToCatalog(id);
    const nodes = Object.fromEntries(
      await Promise.all(['a', 'b'].map(async (id) => [id, await fx.startNode(id)] as const)),
    );
    await fx.startScheduler('s1');
    const { url } = await fx.startGateway({ GATEWAY_OVERVIEW_INTERVAL_MS: '200' });
    const page = await browser.newPage();
    await page.goto(`${url}/`);

    const record = async (id: string): Promise<string | null> => {
      const raw = await fx.redis.hget(fx.keys.executionNodes(), id);
      if (raw === null) return null;
      const decoded = decodePayload('nodeRecord', `${fx.keys.executionNodes()}[${id}]`, raw);
      if (!decoded.ok) throw new Error(decoded.error.problem);
      return statusOfRecord(decoded.value.status);
    };
    const json = async (path: string): Promise<Record<string, unknown>> => {
      const response = await fetch(`${url}${path}`);
      expect(response.status, path).toBe(200);
      return (await response.json()) as Record<string, unknown>;
    };
    /** The node's status as each surface shows it. */
    const everywhere = async (id: string) => {
      const scheduler = await record(id);
      const api = (await json(`/api/nodes/${id}`))['status'];
      const listed = (
        (await json('/api/nodes'))['nodes'] as { node_id: string; status: string }[]
      ).find((n) => n.node_id === id)?.status;
      const overview = (
        (await json('/api/overview'))['nodes'] as { node_id: string; status: string }[]
      ).find((n) => n.node_id === id)?.status;
      // The page updates every 200 ms: wait for the row to show what the overview says.
      const row = page.locator(`tr[data-node="${id}"][data-status="${String(overview)}"]`);
      await row.waitFor({ timeout: 5_000 });
      const shown = await row.locator('.state').textContent();
      return { scheduler, api, listed, overview, page: shown };
    };
    const same = (word: string) => ({
      scheduler: word,
      api: word,
      listed: word,
      overview: word,
      page: word,
    });

    await waitFor(async () => (await record('a')) === 'online', {
      timeoutMs: 10_000,
      description: 'the scheduler records node a',
    });
    expect(await everywhere('a')).toEqual(same('online'));

    // X-Ginkgo-Request: a state change without a JSON body says it is not a cross-site form.
    const drain = await fetch(`${url}/api/nodes/a/drain`, {
      method: 'POST',
      headers: { 'x-ginkgo-request': '1' },
    });
    expect(drain.status).toBe(202);
    await waitFor(async () => (await record('a')) === 'draining', {
      timeoutMs: 10_000,
      description: 'the scheduler drains node a',
    });
    expect(await everywhere('a')).toEqual(same('draining'));

    await nodes['b']?.stop('SIGKILL');
    await waitFor(async () => (await record('b')) === 'lost', {
      timeoutMs: 15_000,
      description: 'the scheduler gives node b up',
    });
    expect(await everywhere('b')).toEqual(same('lost'));
    // The drained node is still draining, and says so everywhere too.
    expect(await everywhere('a')).toEqual(same('draining'));
  }, 60_000);
});
