import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PortfolioQueues } from '@ginkgo-live/portfolio-queue';
import { type RedisServer, REPO_ROOT, StackFixture, tick, waitFor } from '@ginkgo-live/testing';

/**
 * The operations page in a real headless Chromium (Debian's, never a downloaded one) against the
 * stack as processes: nodes, scheduler, notification worker and gateway on a real Redis.
 * Screenshots of each state go to test-artifacts/operations-page (ignored by git).
 */
const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts', 'operations-page');
const CAPACITY = 20;
const TTL_MS = 2_000;
const UPDATE_MS = 500;

let browser: Browser;
let fx: StackFixture;
let server: RedisServer;

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});
afterAll(async () => {
  await browser.close();
});
beforeEach(async () => {
  fx = await StackFixture.start();
  server = fx.server;
});
afterEach(() => fx.close());

const shot = (page: Page, name: string) =>
  page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });

async function stack(env: Record<string, string> = {}) {
  const nodeEnv = { PORTFOLIO_QUEUE_CAPACITY: String(CAPACITY), QUEUE_SAMPLE_MS: '100', ...env };
  for (const id of ['p1', 'p2', 'p3', 'p-full']) await fx.addToCatalog(id);
  // A previous owner still holds p-full (a handover in progress): its node waits, its queue fills.
  await fx.redis.set(fx.keys.portfolioLease('p-full'), 'previous-owner', 'PX', 120_000);
  const nodes = await Promise.all(['a', 'b', 'c'].map((id) => fx.startNode(id, nodeEnv)));
  await fx.startScheduler('s1');
  await fx.startNotificationWorker();
  const gateway = await fx.startGateway({
    GATEWAY_OVERVIEW_INTERVAL_MS: String(UPDATE_MS),
    ...env,
  });
  await waitFor(async () => Object.keys(await fx.plan()).length === 4, { timeoutMs: 10_000 });
  return { nodes, gateway };
}

/** The gateway's JSON API as a script would use it (state changes carry the page's header too). */
async function api(
  url: string,
  key: string,
  method = 'GET',
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, {
    method,
    headers: {
      'X-API-Key': key,
      ...(method === 'GET' ? {} : { 'Content-Type': 'application/json', 'X-Ginkgo-Request': '1' }),
    },
    body: method === 'GET' ? undefined : '{}',
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Waits until the page has rendered `count` more overviews than it showed when called. */
async function nextUpdates(page: Page, count: number): Promise<void> {
  const seen = new Set<string | null>();
  await expect
    .poll(
      async () => {
        seen.add(await page.locator('#updated').getAttribute('datetime'));
        return seen.size;
      },
      { timeout: 10_000, interval: 50 },
    )
    .toBeGreaterThan(count);
}

async function open(url: string, viewport = { width: 1366, height: 900 }): Promise<Page> {
  const page = await browser.newPage({ viewport });
  page.on('pageerror', (err) => {
    throw err;
  });
  await page.goto(url);
  return page;
}

describe('the operations page in Chromium', () => {
  it('shows the fleet live: all online, a killed node lost with its portfolios moved, a full queue critical with its notification', async ({
    annotate,
  }) => {
    const { nodes, gateway } = await stack();
    const page = await open(`${gateway.url}/`);

    // Everything online, the portfolios running.
    await page.locator('tr[data-node][data-status="online"]').nth(2).waitFor();
    await expect.poll(() => page.locator('tr[data-node]').count()).toBe(3);
    for (const id of ['p1', 'p2', 'p3'])
      await page
        .locator(`tr[data-portfolio="${id}"] .state[data-state="running"]`)
        .waitFor({ timeout: 10_000 });
    await expect.poll(() => page.locator('#redis-status').textContent()).toBe('Redis: up');
    expect(await page.locator('[data-card="Nodes online"] dd').textContent()).toBe('3 / 3');
    await shot(page, '1-all-online');

    // Kill the node running p1: lost on the page within one update after its heartbeat expires,
    // and its portfolios shown running on the others.
    const plan = await fx.plan();
    const victim = plan['p1'] ?? 'a';
    const moved = Object.entries(plan)
      .filter(([id, n]) => n === victim && id !== 'p-full')
      .map(([id]) => id);
    const killedAt = Date.now();
    await nodes.find((n) => n.name === `node ${victim}`)?.stop('SIGKILL');
    await page
      .locator(`tr[data-node="${victim}"][data-status="lost"]`)
      .waitFor({ timeout: 10_000 });
    const lostAfterMs = Date.now() - killedAt;
    await annotate(`killed node shown lost ${lostAfterMs} ms after SIGKILL (TTL ${TTL_MS} ms)`);
    // Heartbeat TTL + one update + a beat interval's phase + margin for the test's own polling.
    expect(lostAfterMs).toBeLessThan(TTL_MS + UPDATE_MS + 500 + 1_000);
    expect(await page.locator(`tr[data-node="${victim}"] .state`).textContent()).toBe('lost');
    expect(await page.locator('[data-card="Nodes online"] dd').textContent()).toBe('2 / 3');
    for (const id of moved) {
      await expect
        .poll(
          async () => {
            const row = page.locator(`tr[data-portfolio="${id}"]`);
            const node = await row.locator('td[data-field="node"]').textContent();
            const status = await row.locator('.state').textContent();
            return node !== victim && status === 'running';
          },
          { timeout: 15_000 },
        )
        .toBe(true);
    }
    await shot(page, '2-node-lost');

    // Fill p-full's queue: its bar turns critical (full) and the queue_full notification shows.
    const queues = new PortfolioQueues({ connection: fx.redis, keys: fx.keys, capacity: CAPACITY });
    for (let i = 0; i < CAPACITY; i++) await queues.add('p-full', tick(i));
    await queues.close();
    await page
      .locator('tr[data-portfolio="p-full"] .bar[data-level="full"]')
      .waitFor({ timeout: 5_000 });
    await page
      .locator('#notifications li[data-kind="queue_full"]')
      .first()
      .waitFor({ timeout: 10_000 });
    const notice = await page
      .locator('#notifications li[data-kind="queue_full"]')
      .first()
      .textContent();
    expect(notice).toContain('delivery delivered');
    expect(notice).toContain('p-full');
    // Trouble first: the full portfolio is the top row.
    expect(await page.locator('#portfolios tbody tr').first().getAttribute('data-portfolio')).toBe(
      'p-full',
    );
    await shot(page, '3-queue-full');
    await page.close();
  }, 120_000);

  it('drains a node from the keyboard with the outcome shown, says so when Redis is lost, and fits a phone', async () => {
    const { gateway } = await stack();
    const page = await open(`${gateway.url}/`);
    await page.locator('tr[data-node="b"][data-status="online"]').waitFor({ timeout: 10_000 });

    // Keyboard only: focus the drain button of node b and press Enter.
    await page.locator('tr[data-node="b"] button[data-action="drain"]').focus();
    await page.keyboard.press('Enter');
    await page.locator('#requests li[data-status="accepted"]').waitFor({ timeout: 10_000 });
    expect(await page.locator('#requests li').first().textContent()).toContain('drain b');
    await page
      .locator('tr[data-node="b"] .state[data-state="draining"]')
      .waitFor({ timeout: 10_000 });

    // Redis lost: the page says so instead of showing the numbers as current.
    await server.kill();
    await page.locator('#banner:not([hidden])').waitFor({ timeout: 5_000 });
    expect(await page.locator('#banner').textContent()).toMatch(/cannot read Redis.*not current/);
    expect(await page.locator('#redis-status').textContent()).toBe('Redis: down');
    expect(await page.locator('main').getAttribute('class')).toContain('stale');
    await shot(page, '4-redis-down');
    await server.restart({ keepData: false });
    await page.locator('#banner[hidden]').waitFor({ state: 'attached', timeout: 15_000 });
    expect(await page.locator('#redis-status').textContent()).toBe('Redis: up');
    await page.close();

    // A phone: nothing wider than the screen except inside the scrolling tables.
    const phone = await open(`${gateway.url}/`, { width: 390, height: 844 });
    await phone.locator('tr[data-node]').first().waitFor({ timeout: 10_000 });
    // (A string: this file is typed for Node, the expression runs in the page.)
    const overflow = Number(
      await phone.evaluate(
        'document.documentElement.scrollWidth - document.documentElement.clientWidth',
      ),
    );
    expect(overflow).toBeLessThanOrEqual(0);
    await shot(phone, '5-phone');
    await phone.close();
  }, 120_000);

  it('asks for the API key where reads need one, and lets only a keyed user drain', async () => {
    const KEY = 'operator-key-0123456789';
    const KEYS = `operator:operate:${KEY}`;
    const { gateway } = await stack({ GATEWAY_API_KEYS: KEYS });
    const page = await open(`${gateway.url}/`);
    await expect.poll(() => page.locator('#feed-status').textContent()).toBe('API key needed');
    expect(await page.locator('tr[data-node]').count()).toBe(0);
    await page.locator('#api-key').fill(KEY);
    await page.locator('#api-key').press('Enter');
    await page.locator('tr[data-node="a"][data-status="online"]').waitFor({ timeout: 10_000 });
    expect(await page.locator('#feed-status').textContent()).toBe('Live');
    await page.close();

    // Public reads: the page shows the fleet to anyone, but a drain without the key is refused.
    const open2 = await fx.startGateway({
      GATEWAY_API_KEYS: KEYS,
      GATEWAY_PUBLIC_READS: 'true',
      GATEWAY_OVERVIEW_INTERVAL_MS: String(UPDATE_MS),
    });
    const viewer = await open(`${open2.url}/`);
    await viewer.locator('tr[data-node="a"][data-status="online"]').waitFor({ timeout: 10_000 });
    await viewer.locator('tr[data-node="a"] button[data-action="drain"]').click();
    await viewer.locator('#requests li[data-status="error"]').waitFor({ timeout: 5_000 });
    expect(await viewer.locator('#requests li').first().textContent()).toContain('401');
    await viewer.locator('#api-key').fill(KEY);
    await viewer.locator('#key-form button').click();
    await viewer.locator('tr[data-node="a"] button[data-action="drain"]').click();
    await viewer.locator('#requests li[data-status="accepted"]').waitFor({ timeout: 10_000 });
    await shot(viewer, '6-keyed-drain');
    await viewer.close();
  }, 120_000);

  it("keeps an operator's half-made Move choice, focus and scroll across updates, then sends it; halts, resumes and pauses with a 403 shown; lists the halt in the audit trail", async () => {
    const VIEWER = 'viewer-secret-0123456789';
    const LEAD = 'lead-secret-0123456789';
    const { gateway } = await stack({
      GATEWAY_API_KEYS: `viewer:read:${VIEWER},lead:admin:${LEAD}`,
    });
    const overview = async () => (await api(`${gateway.url}/api/overview`, LEAD)).body;
    const page = await open(`${gateway.url}/`, { width: 1366, height: 600 });
    // Every state change the page sends, as it went on the wire.
    const changes: { url: string; headers: Record<string, string>; body: string | null }[] = [];
    page.on('request', (request) => {
      if (request.method() !== 'GET')
        changes.push({ url: request.url(), headers: request.headers(), body: request.postData() });
    });
    await page.locator('#api-key').fill(VIEWER);
    await page.locator('#api-key').press('Enter');
    await page.locator('tr[data-portfolio="p1"] .state[data-state="running"]').waitFor({
      timeout: 10_000,
    });

    // A read key: the audit panel says the trail needs admin instead of failing.
    await expect.poll(() => page.locator('#audit-status').textContent()).toContain('admin scope');

    // A Move menu opened and changed but not submitted survives the next updates: the same element
    // (a marker set on it is still there), its choice, the focus, and the page's scroll position.
    const plan = await fx.plan();
    const target = ['a', 'b', 'c'].find((n) => n !== plan['p1']) ?? 'a';
    const select = page.locator('tr[data-portfolio="p1"] select');
    await select.click();
    await select.selectOption(target);
    await select.evaluate((s) => {
      (s as unknown as { marker: string }).marker = 'kept';
    });
    await select.focus();
    await page.evaluate('window.scrollTo(0, 250)');
    const scrolled = Number(await page.evaluate('window.scrollY'));
    expect(scrolled).toBe(250);
    await nextUpdates(page, 2);
    expect(
      await select.evaluate((s) => {
        // (Typed by hand: this file is typed for Node, the function runs in the page.)
        const menu = s as unknown as {
          marker?: string;
          isConnected: boolean;
          value: string;
          ownerDocument: { activeElement: unknown };
        };
        return {
          marker: menu.marker,
          attached: menu.isConnected,
          focused: menu === menu.ownerDocument.activeElement,
          value: menu.value,
        };
      }),
    ).toEqual({ marker: 'kept', attached: true, focused: true, value: target });
    expect(Number(await page.evaluate('window.scrollY'))).toBe(scrolled);
    expect(
      await page.locator(`tr[data-portfolio="p1"] button[data-action="migrate"]`).isEnabled(),
    ).toBe(true);
    // Menus nobody touched show no choice: Move stays disabled until a node is picked.
    expect(await page.locator('tr[data-portfolio="p2"] select').inputValue()).toBe('');
    expect(
      await page.locator(`tr[data-portfolio="p2"] button[data-action="migrate"]`).isDisabled(),
    ).toBe(true);

    // A portfolio removed from the catalog disappears, a new one appears in the gateway's order;
    // the other rows (and the half-made choice) stay.
    expect((await api(`${gateway.url}/api/portfolios/p3`, LEAD, 'DELETE')).status).toBe(202);
    await fx.addToCatalog('p0');
    await page.locator('tr[data-portfolio="p3"]').waitFor({ state: 'detached', timeout: 10_000 });
    await page.locator('tr[data-portfolio="p0"]').waitFor({ timeout: 10_000 });
    await expect
      .poll(async () => {
        const shown = await page
          .locator('#portfolios tbody tr')
          .evaluateAll((rows) =>
            (rows as unknown as { getAttribute(name: string): string | null }[]).map((r) =>
              r.getAttribute('data-portfolio'),
            ),
          );
        const served = ((await overview())['portfolios'] as { portfolio_id: string }[]).map(
          (p) => p.portfolio_id,
        );
        return JSON.stringify(shown) === JSON.stringify(served);
      })
      .toBe(true);
    expect(await select.evaluate((s) => (s as unknown as { marker?: string }).marker)).toBe('kept');
    await shot(page, '7-move-kept');

    // A halt with a read key is refused, and the gateway's message (naming the scope) is shown.
    await page.locator('#halt-open').click();
    await page.locator('#halt-reason').fill('not allowed');
    await page.locator('#halt-confirm').click();
    await page.locator('#notice:not([hidden])').waitFor({ timeout: 5_000 });
    const refusal = await page.locator('#notice').textContent();
    expect(refusal).toContain('halt trading failed: 403');
    expect(refusal).toContain('operate');
    expect((await overview())['trading']).toMatchObject({ halted: null });

    // The lead's key from here on (the stream restarts with it): the half-made choice is still
    // there, and Move sends it.
    await page.locator('#api-key').fill(LEAD);
    await page.locator('#api-key').press('Enter');
    await nextUpdates(page, 1);
    expect(await select.evaluate((s) => (s as unknown as { marker?: string }).marker)).toBe('kept');
    await page.locator('tr[data-portfolio="p1"] button[data-action="migrate"]').click();
    await page
      .locator('#requests li[data-status="accepted"]', { hasText: `migrate p1 to ${target}` })
      .waitFor({ timeout: 15_000 });
    await expect
      .poll(() => page.locator('tr[data-portfolio="p1"] td[data-field="node"]').textContent(), {
        timeout: 15_000,
      })
      .toBe(target);
    expect(await select.inputValue()).toBe('');

    // Halt: a confirm step with a reason; the API reports the halt, the banner says who and why.
    await page.locator('#halt-open').click();
    await page.locator('#halt-reason').fill('desk check');
    await page.locator('#halt-confirm').click();
    await page.locator('#halt-banner:not([hidden])').waitFor({ timeout: 5_000 });
    const banner = await page.locator('#halt-banner').textContent();
    expect(banner).toContain('by lead');
    expect(banner).toContain('desk check');
    expect((await overview())['trading']).toMatchObject({
      halted: { by: 'lead', reason: 'desk check' },
    });
    expect(await page.locator('#notice').isHidden()).toBe(true);
    await shot(page, '8-halted');

    // The audit panel lists the halt with the key's name, and the read key's refused attempt.
    await page
      .locator('#audit tbody tr[data-action="halt"][data-actor="lead"][data-outcome="accepted"]')
      .waitFor({ timeout: 10_000 });
    expect(
      await page
        .locator('#audit tbody tr[data-action="halt"][data-actor="viewer"]')
        .getAttribute('data-outcome'),
    ).toBe('forbidden');

    // Resume clears the banner and the halt.
    await page.locator('#resume-trading').click();
    await page.locator('#halt-banner').waitFor({ state: 'hidden', timeout: 5_000 });
    expect((await overview())['trading']).toMatchObject({ halted: null });

    // Pause one portfolio: marked paused at once (the operator's pause), then paused by its node.
    await page.locator('tr[data-portfolio="p2"] button[data-action="pause"]').click();
    await page.locator('tr[data-portfolio="p2"][data-paused]').waitFor({ timeout: 5_000 });
    await page
      .locator('tr[data-portfolio="p2"] .state[data-state="paused"]')
      .waitFor({ timeout: 10_000 });
    expect(await page.locator('tr[data-portfolio="p2"] [data-badge="paused"]').isVisible()).toBe(
      true,
    );
    expect(await page.locator('tr[data-portfolio="p2"] [data-badge="paused"]').textContent()).toBe(
      'paused by lead',
    );
    expect(await page.locator('tr[data-portfolio="p1"][data-paused]').count()).toBe(0);
    await shot(page, '9-paused');
    await page.locator('tr[data-portfolio="p2"] button[data-action="resume"]').click();
    await page
      .locator('tr[data-portfolio="p2"] .state[data-state="running"]')
      .waitFor({ timeout: 10_000 });
    expect(await page.locator('tr[data-portfolio="p2"][data-paused]').count()).toBe(0);

    // Each carried a JSON body, its content type, the page's request header and the typed key.
    expect(changes.map((c) => new URL(c.url).pathname)).toEqual([
      '/api/fleet/halt',
      '/api/schedule/migrate',
      '/api/fleet/halt',
      '/api/fleet/resume',
      '/api/portfolios/p2/pause',
      '/api/portfolios/p2/resume',
    ]);
    expect(changes.map((c) => JSON.parse(c.body ?? 'null') as unknown)).toEqual([
      { reason: 'not allowed' },
      { portfolio_id: 'p1', target_node: target },
      { reason: 'desk check' },
      {},
      {},
      {},
    ]);
    for (const [i, change] of changes.entries())
      expect(change.headers).toMatchObject({
        'content-type': 'application/json',
        'x-ginkgo-request': '1',
        'x-api-key': i === 0 ? VIEWER : LEAD,
      });

    // Silences: one made from the form is listed, audited, and ended with its button.
    changes.length = 0;
    await page.locator('#silence-node').fill('node-3');
    await page.locator('#silence-kind').fill('node_lost, queue_usage_high');
    await page.locator('#silence-duration').selectOption('8h');
    await page.locator('#silence-comment').fill('maintenance');
    await page.locator('#silence-form button[type="submit"]').click();
    const row = page.locator('#silences tbody tr[data-silence]');
    await row.waitFor({ timeout: 10_000 });
    expect(await row.locator('td[data-field="matches"]').textContent()).toBe(
      'kind node_lost, queue_usage_high · node node-3',
    );
    expect(await row.locator('td[data-field="by"]').textContent()).toBe('lead');
    expect(await row.locator('td[data-field="why"]').textContent()).toBe('maintenance');
    expect(JSON.parse(changes[0]?.body ?? 'null')).toEqual({
      matchers: { node: ['node-3'], kind: ['node_lost', 'queue_usage_high'] },
      duration: '8h',
      comment: 'maintenance',
    });
    await page
      .locator('#audit tbody tr[data-action="silence"][data-actor="lead"][data-outcome="accepted"]')
      .waitFor({ timeout: 10_000 });
    await row.locator('button[data-action="end-silence"]').click();
    await row.waitFor({ state: 'detached', timeout: 10_000 });
    expect(await page.locator('#silences-status').textContent()).toMatch(/^0 active/);
    expect(changes.map((c) => new URL(c.url).pathname)).toEqual([
      '/api/silences',
      expect.stringMatching(/^\/api\/silences\/[0-9a-f-]{36}\/expire$/) as unknown,
    ]);
    await page.close();
  }, 120_000);
});
