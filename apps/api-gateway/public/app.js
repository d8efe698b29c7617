// ginkgo-live operations page. Plain ES module, no build step, no dependencies: it reads the
// gateway's server-sent events (/api/overview/stream, shaped by the gateway) and renders them.
// Reads go through fetch (not EventSource) so that an API key can travel in a header.
//
// The stream sends the whole overview once, then only the rows each update changed
// (overview-state.js keeps the page's copy). Each update patches the page in place: rows and list
// items are keyed (node id, portfolio id, notification id) and only what changed is written.
// Rebuilding a table every second would close an open Move menu, drop its half-made choice, lose
// the focus and jump the scroll position.

/* global AbortController */
import { OverviewState } from './overview-state.js';

const KEY_STORAGE = 'ginkgo-live.api-key';
const RECONNECT_MS = 2000;
const AUDIT_LIMIT = 50;
const AUDIT_REFRESH_MS = 5000;
const REQUESTS_SHOWN = 10;
const $ = (selector) => document.querySelector(selector);
/** What the page keeps per rendered element (its parts, the item it shows now), off the DOM's own properties. */
const views = new WeakMap();

const state = {
  key: sessionStorage.getItem(KEY_STORAGE) ?? '',
  last: undefined,
  lastMessageAt: 0,
  requests: [],
  requestSeq: 0,
  stream: undefined,
};

// ---------- small helpers ----------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'text') node.textContent = String(value);
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Writes only a changed text: an unchanged cell is not touched (no flicker, no lost selection). */
function setText(node, text) {
  const value = String(text);
  if (node.textContent !== value) node.textContent = value;
}

/** Sets (or, for null/undefined/false, removes) an attribute when it differs. */
function setAttr(node, name, value) {
  if (value === null || value === undefined || value === false) {
    if (node.hasAttribute(name)) node.removeAttribute(name);
    return;
  }
  const text = value === true ? '' : String(value);
  if (node.getAttribute(name) !== text) node.setAttribute(name, text);
}

function setHidden(node, hidden) {
  if (node.hidden !== hidden) node.hidden = hidden;
}

/**
 * The positions of a longest increasing run of `values` (skipping -1): the children that may stay
 * where they are while the others move around them.
 */
function longestIncreasing(values) {
  const tails = [];
  const previous = new Array(values.length).fill(-1);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v < 0) continue;
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (values[tails[mid]] < v) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) previous[i] = tails[lo - 1];
    tails[lo] = i;
  }
  const keep = new Set();
  for (let i = tails.at(-1) ?? -1; i >= 0; i = previous[i]) keep.add(i);
  return keep;
}

/**
 * Makes `container`'s children one per item, in the items' order, keyed by `keyOf`: an existing
 * child is updated in place (`update`), a new key gets `create`d, a key no longer listed is removed,
 * and as few children as possible move. `moveBefore` (where the browser has it) moves a child without
 * taking it out of the document, so a focused control inside keeps its focus. With no items the
 * container shows `empty()` (an unkeyed child) instead.
 */
function reconcile(container, items, keyOf, create, update, empty) {
  if (items.length === 0 && empty) {
    const only = container.firstElementChild;
    if (container.children.length !== 1 || only.dataset.key !== undefined)
      container.replaceChildren(empty());
    return;
  }
  const old = new Map();
  for (const child of [...container.children]) {
    if (child.dataset.key === undefined || old.has(child.dataset.key)) child.remove();
    else old.set(child.dataset.key, child);
  }
  const wanted = items.map((item) => {
    const key = String(keyOf(item));
    let node = old.get(key);
    if (node === undefined) {
      node = create(item);
      node.dataset.key = key;
    } else old.delete(key);
    update(node, item);
    return node;
  });
  for (const gone of old.values()) gone.remove();
  const position = new Map([...container.children].map((child, i) => [child, i]));
  const stay = longestIncreasing(wanted.map((node) => position.get(node) ?? -1));
  for (let i = wanted.length - 1; i >= 0; i--) {
    if (stay.has(i)) continue;
    const node = wanted[i];
    const before = wanted[i + 1] ?? null;
    if (node.parentNode === container && typeof container.moveBefore === 'function')
      container.moveBefore(node, before);
    else container.insertBefore(node, before);
  }
}

const dash = '—';
const num = (v, digits = 0) =>
  v === null || v === undefined
    ? dash
    : Number(v).toLocaleString(undefined, {
        maximumFractionDigits: digits,
        minimumFractionDigits: digits,
      });
const pct = (v) => (v === null || v === undefined ? dash : `${Math.round(v * 100)} %`);
const bytes = (v) => (v === null || v === undefined ? dash : `${(v / 1048576).toFixed(0)} MiB`);
const age = (ms) =>
  ms === null || ms === undefined ? dash : ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : dash);
const dateTime = (iso) => (iso ? new Date(iso).toLocaleString() : dash);

function readHeaders() {
  return state.key ? { 'X-API-Key': state.key } : {};
}

/**
 * Headers of every state-changing request: a JSON body, and `X-Ginkgo-Request`, a header a plain
 * HTML form or a cross-origin page cannot send without a preflight the gateway refuses.
 */
function writeHeaders() {
  return { ...readHeaders(), 'Content-Type': 'application/json', 'X-Ginkgo-Request': '1' };
}

function queueBar() {
  const fill = el('span');
  const bar = el(
    'span',
    { class: 'bar', role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': 100 },
    fill,
  );
  const label = el('span', { class: 'level-label' });
  const node = el('span', { class: 'queue' }, bar, label);
  views.set(node, { bar, fill, label });
  return node;
}

function updateQueueBar(node, usage, level, label) {
  const width = usage === null || usage === undefined ? 0 : Math.min(100, Math.round(usage * 100));
  const { bar, fill, label: text } = views.get(node);
  setAttr(bar, 'data-level', level);
  setAttr(bar, 'aria-valuenow', width);
  setAttr(bar, 'aria-label', `queue ${width} % full`);
  setAttr(fill, 'style', `width:${width}%`);
  setAttr(text, 'data-level', level);
  setText(text, label);
}

/**
 * The overview's `trading` part: the fleet-wide halt (who, when, why, or null) and the portfolios
 * an operator paused, by id.
 */
function tradingOf(m) {
  const trading = m.trading ?? {};
  const paused = new Map((trading.paused ?? []).map((p) => [p.portfolio_id, p]));
  return { known: m.trading !== undefined, halt: trading.halted ?? null, paused };
}

// ---------- rendering ----------

function renderSummary(m, trading) {
  const s = m.summary;
  const cards = [
    ['Nodes online', `${s.nodes_online} / ${s.nodes_total}`, s.nodes_lost > 0],
    ['Portfolios running', `${s.portfolios_running} / ${s.portfolios_total}`, false],
    ['Orphaned', String(s.portfolios_orphaned), s.portfolios_orphaned > 0],
    ['Paused by operators', String(trading.paused.size), trading.paused.size > 0 && 'warning'],
    ['Events / s', num(s.events_per_second, 1), false],
    // The thresholds come with the data (the fleet read model's), never spelled here.
    [
      'Fullest queue',
      pct(s.queue_usage_max),
      (s.queue_usage_max ?? 0) >= m.queue_thresholds.critical,
    ],
    ['Notifications (1 h)', String(s.notifications_last_hour), false],
    ['Scheduler leader', s.leader ?? 'none', s.leader === null],
    ['Plan version', s.plan_version ?? dash, false],
  ];
  reconcile(
    $('#summary'),
    cards,
    ([label]) => label,
    ([label]) => el('div', { 'data-card': label }, el('dt', { text: label }), el('dd')),
    (card, [, value, bad]) => {
      const dd = card.lastElementChild;
      setText(dd, value);
      setAttr(dd, 'data-level', bad === 'warning' ? 'warning' : bad ? 'critical' : 'ok');
    },
  );
}

const CHARTS = [
  ['Queued events', (p) => p.queue_depth_total, (v) => num(v)],
  ['Fullest queue', (p) => p.queue_usage_max, (v) => pct(v)],
  ['Events / s', (p) => p.events_per_second, (v) => num(v, 1)],
];

function createChart([title]) {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 240 60');
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('role', 'img');
  const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
  svg.append(line);
  const latest = el('strong');
  const peak = el('span', { class: 'muted small' });
  const figure = el(
    'figure',
    { class: 'chart' },
    el('figcaption', {}, `${title} `, latest, peak),
    svg,
  );
  views.set(figure, { svg, line, latest, peak });
  return figure;
}

function updateChart(figure, [title, pick, format], points) {
  const values = points.map(pick).map((v) => (v === null || v === undefined ? 0 : v));
  const max = Math.max(1e-9, ...values);
  const w = 240;
  const h = 60;
  const coords = values
    .map((v, i) => {
      const x = values.length < 2 ? w : (i / (values.length - 1)) * w;
      const y = h - 2 - (v / max) * (h - 4);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .join(' ');
  const { svg, line, latest, peak } = views.get(figure);
  setAttr(line, 'points', coords);
  setAttr(svg, 'aria-label', `${title}: now ${format(values.at(-1))}, peak ${format(max)}`);
  setText(latest, format(values.at(-1)));
  setText(peak, ` peak ${format(max)}`);
}

function renderCharts(m) {
  const points = m.history ?? [];
  reconcile(
    $('#charts'),
    CHARTS,
    ([title]) => title,
    createChart,
    (figure, chart) => updateChart(figure, chart, points),
  );
}

function emptyRow(colspan, text) {
  return el('tr', {}, el('td', { colspan, class: 'muted', text }));
}

function createNodeRow() {
  const cells = {
    id: el('th', { scope: 'row' }),
    state: el('span', { class: 'state' }),
    heard: el('span', { class: 'muted small' }),
    count: el('td', { class: 'num' }),
    queue: queueBar(),
    events: el('td', { class: 'num' }),
    cpu: el('td', { class: 'num' }),
    memory: el('td', { class: 'num' }),
    failures: el('td', { class: 'num' }),
    action: el('button', { type: 'button' }),
  };
  const row = el(
    'tr',
    {},
    cells.id,
    el('td', {}, cells.state, cells.heard),
    cells.count,
    el('td', {}, cells.queue),
    cells.events,
    cells.cpu,
    cells.memory,
    cells.failures,
    el('td', {}, cells.action),
  );
  const view = { cells, item: undefined, paused: false };
  views.set(row, view);
  // The row's latest node, not the one it was made for: the row lives across updates.
  cells.action.addEventListener('click', () => {
    const n = view.item;
    const action = n.status === 'draining' ? 'undrain' : 'drain';
    void control(
      `/api/nodes/${encodeURIComponent(n.node_id)}/${action}`,
      {},
      `${action} ${n.node_id}`,
    );
  });
  return row;
}

function updateNodeRow(row, n) {
  const view = views.get(row);
  view.item = n;
  const c = view.cells;
  // One status, the gateway's: online, draining or lost.
  const action = n.status === 'draining' ? 'undrain' : 'drain';
  const verb = action === 'drain' ? 'Drain' : 'Undrain';
  setAttr(row, 'data-node', n.node_id);
  setAttr(row, 'data-status', n.status);
  setText(c.id, n.node_id);
  setAttr(c.state, 'data-state', n.status);
  setText(c.state, n.status);
  setText(
    c.heard,
    n.heartbeat_age_ms === null
      ? ' never heard from'
      : n.status === 'lost'
        ? ` last heartbeat ${age(n.heartbeat_age_ms)} ago`
        : ` heartbeat ${age(n.heartbeat_age_ms)} ago`,
  );
  setText(c.count, `${n.portfolio_count} / ${n.capacity ?? dash}`);
  updateQueueBar(c.queue, n.queue_usage_max, n.queue_level, pct(n.queue_usage_max));
  setText(c.events, num(n.events_per_second, 1));
  setText(c.cpu, n.cpu_percent === null ? dash : `${num(n.cpu_percent, 1)} %`);
  setText(c.memory, bytes(n.memory_rss_bytes));
  setText(c.failures, n.redis_failures ?? dash);
  setHidden(c.action, n.status === 'lost');
  setAttr(c.action, 'data-action', action);
  setAttr(c.action, 'aria-label', `${verb} ${n.node_id}`);
  setText(c.action, verb);
}

function renderNodes(m) {
  reconcile(
    $('#nodes tbody'),
    m.nodes,
    (n) => n.node_id,
    createNodeRow,
    updateNodeRow,
    () => emptyRow(9, 'No node has announced itself.'),
  );
}

function createPortfolioRow() {
  const cells = {
    id: el('th', { scope: 'row' }),
    state: el('span', { class: 'state' }),
    paused: el('span', { class: 'badge', 'data-badge': 'paused' }),
    node: el('td', { 'data-field': 'node' }),
    queue: queueBar(),
    events: el('td', { class: 'num' }),
    latency: el('td', { class: 'num' }),
    cash: el('td', { class: 'num' }),
    value: el('td', { class: 'num' }),
    error: el('td', { class: 'error' }),
    // The operator's pick: the placeholder until one is chosen, so a click on Move never sends a
    // node the operator did not choose.
    select: el(
      'select',
      { 'data-field': 'target' },
      el('option', { value: '', selected: true, 'data-key': '', text: 'Move to…' }),
    ),
    move: el('button', { type: 'button', 'data-action': 'migrate', text: 'Move', disabled: true }),
    trade: el('button', { type: 'button' }),
  };
  cells.moveControls = el('span', { class: 'move' }, cells.select, ' ', cells.move);
  const row = el(
    'tr',
    {},
    cells.id,
    el('td', {}, cells.state, ' ', cells.paused),
    cells.node,
    el('td', {}, cells.queue),
    cells.events,
    cells.latency,
    cells.cash,
    cells.value,
    cells.error,
    el('td', {}, cells.moveControls),
    el('td', {}, cells.trade),
  );
  const view = { cells, item: undefined, paused: false };
  views.set(row, view);
  cells.select.addEventListener('change', () => {
    cells.move.disabled = cells.select.value === '';
  });
  cells.move.addEventListener('click', () => {
    const id = view.item.portfolio_id;
    const target = cells.select.value;
    if (target === '') return;
    cells.select.value = '';
    cells.move.disabled = true;
    void control(
      '/api/schedule/migrate',
      { portfolio_id: id, target_node: target },
      `migrate ${id} to ${target}`,
    );
  });
  cells.trade.addEventListener('click', () => {
    const id = view.item.portfolio_id;
    const action = view.paused ? 'resume' : 'pause';
    void control(`/api/portfolios/${encodeURIComponent(id)}/${action}`, {}, `${action} ${id}`);
  });
  return row;
}

function updatePortfolioRow(row, p, targets, trading) {
  const view = views.get(row);
  const pause = trading.paused.get(p.portfolio_id);
  // A row the update did not change is the same object: with the same pause and targets there is
  // nothing to write (tens of thousands of rows are checked each second).
  if (view.item === p && view.pause === pause && view.targets === targets) return;
  view.item = p;
  view.pause = pause;
  view.targets = targets;
  const c = view.cells;
  view.paused = pause !== undefined;
  setAttr(row, 'data-portfolio', p.portfolio_id);
  setAttr(row, 'data-level', p.queue_level);
  setAttr(row, 'data-paused', view.paused ? 'true' : null);
  setText(c.id, p.portfolio_id);
  setAttr(c.id, 'title', p.name ?? '');
  setAttr(c.state, 'data-state', p.status);
  setText(c.state, p.status);
  setHidden(c.paused, !view.paused);
  setText(c.paused, pause ? `paused by ${pause.by}` : '');
  setAttr(
    c.paused,
    'title',
    pause
      ? `Paused by ${pause.by} at ${dateTime(pause.paused_at)}${pause.reason ? `: ${pause.reason}` : ''}`
      : null,
  );
  setText(c.node, p.node_id ?? (p.reason ? `none (${p.reason})` : dash));
  updateQueueBar(
    c.queue,
    p.queue_usage,
    p.queue_level,
    p.queue_depth === null ? dash : `${p.queue_depth} / ${p.queue_capacity ?? dash}`,
  );
  setText(c.events, num(p.events_per_second, 1));
  setText(
    c.latency,
    p.latency_p50_ms === null
      ? dash
      : `${num(p.latency_p50_ms, 1)} / ${num(p.latency_p99_ms, 1)} ms`,
  );
  setText(c.cash, num(p.cash, 2));
  setText(c.value, num(p.total_value, 2));
  setText(c.error, p.last_error ?? '');

  // The targets change rarely (a node joins, drains or is lost): options are keyed too, so an
  // open menu and its chosen option stay as long as that node remains a target.
  const choices = targets.filter((t) => t !== p.node_id);
  reconcile(
    c.select,
    ['', ...choices],
    (t) => t,
    (t) => el('option', { value: t, text: t }),
    () => {},
  );
  setAttr(c.select, 'aria-label', `Target node for ${p.portfolio_id}`);
  setAttr(c.move, 'aria-label', `Move ${p.portfolio_id}`);
  c.move.disabled = c.select.value === '';
  setHidden(c.moveControls, choices.length === 0);

  const action = view.paused ? 'resume' : 'pause';
  setAttr(c.trade, 'data-action', action);
  setAttr(c.trade, 'aria-label', `${view.paused ? 'Resume' : 'Pause'} ${p.portfolio_id}`);
  setText(c.trade, view.paused ? 'Resume' : 'Pause');
}

/** The online nodes' ids: the same array while they stay the same, so unchanged rows are skipped. */
let lastTargets = [];
function moveTargets(m) {
  const targets = m.nodes.filter((n) => n.status === 'online').map((n) => n.node_id);
  if (targets.length !== lastTargets.length || targets.some((t, i) => t !== lastTargets[i]))
    lastTargets = targets;
  return lastTargets;
}

function renderPortfolios(m, trading) {
  const targets = moveTargets(m);
  reconcile(
    $('#portfolios tbody'),
    m.portfolios,
    (p) => p.portfolio_id,
    createPortfolioRow,
    (row, p) => updatePortfolioRow(row, p, targets, trading),
    () => emptyRow(11, 'No portfolio in the catalog.'),
  );
}

function renderNotifications(m) {
  reconcile(
    $('#notifications'),
    m.notifications,
    (n) => n.id,
    (n) =>
      // A notification never changes once written: made once, never patched.
      el(
        'li',
        { 'data-level': n.level, 'data-status': n.status, 'data-kind': n.kind },
        el('strong', { text: `${n.status === 'resolved' ? 'Resolved: ' : ''}${n.title}` }),
        el('div', { text: n.message }),
        el(
          'div',
          { class: 'meta' },
          `${time(n.created_at)} · ${n.level} · ${n.kind}${n.subject ? ` · ${n.subject}` : ''} · delivery ${n.delivery}`,
          n.delivery_problems.length > 0 ? ` (${n.delivery_problems.join('; ')})` : '',
        ),
      ),
    () => {},
    () => el('li', { class: 'muted', text: 'No notification yet.' }),
  );
}

/** How long since `iso`, as of the overview's time: " (for 3 min)". */
function since(iso, now) {
  const ms = Date.parse(now) - Date.parse(iso);
  if (!Number.isFinite(ms) || ms < 0) return '';
  const minutes = Math.floor(ms / 60000);
  if (minutes < 1) return ' (under a minute ago)';
  if (minutes < 120) return ` (${minutes} min ago)`;
  return ` (${Math.floor(minutes / 60)} h ago)`;
}

function renderTrading(trading, generatedAt) {
  const halt = trading.halt;
  document.body.dataset.trading = !trading.known ? 'unknown' : halt ? 'halted' : 'live';
  setHidden($('#halt-banner'), halt === null);
  setHidden($('#halt-open'), halt !== null);
  setText(
    $('#trading-state'),
    !trading.known
      ? 'Trading: this gateway does not report it'
      : halt
        ? 'Trading: halted'
        : `Trading: live${trading.paused.size > 0 ? ` (${trading.paused.size} paused)` : ''}`,
  );
  if (halt)
    setText(
      $('#halt-detail'),
      `by ${halt.by} at ${dateTime(halt.halted_at)}${since(halt.halted_at, generatedAt)}` +
        (halt.reason ? `: “${halt.reason}”` : ' (no reason given)') +
        '. No portfolio applies events; queues keep what arrives until full.',
    );
}

function renderStatus(m) {
  const redis = $('#redis-status');
  setAttr(redis, 'data-state', m.redis.status);
  setText(redis, m.redis.status === 'up' ? 'Redis: up' : 'Redis: down');
  const banner = $('#banner');
  const main = $('#main');
  if (m.stale) {
    setHidden(banner, false);
    setText(
      banner,
      `The gateway cannot read Redis (since ${time(m.redis.down_since)}): ` +
        (m.data_as_of
          ? `the numbers below are from ${time(m.data_as_of)}, not current.`
          : 'no data yet.'),
    );
    main.classList.add('stale');
  } else {
    setHidden(banner, true);
    setText(banner, '');
    main.classList.remove('stale');
  }
  const updated = $('#updated');
  setAttr(updated, 'datetime', m.generated_at);
  setText(updated, `updated ${time(m.generated_at)}`);
}

function render(m) {
  state.last = m;
  const trading = tradingOf(m);
  document.body.dataset.redis = m.redis.status;
  renderStatus(m);
  renderTrading(trading, m.generated_at);
  renderSummary(m, trading);
  renderCharts(m);
  renderNodes(m);
  renderPortfolios(m, trading);
  renderNotifications(m);
}

function setFeed(stateName, text) {
  const feed = $('#feed-status');
  setAttr(feed, 'data-state', stateName);
  setText(feed, text);
  document.body.dataset.feed = stateName;
}

function showGatewayLost(reason, label = 'Gateway unreachable') {
  setFeed('down', label);
  const banner = $('#banner');
  banner.hidden = false;
  banner.textContent = `Lost the gateway (${reason}); retrying. The numbers below are from ${time(state.last?.generated_at)}, not current.`;
  $('#main').classList.add('stale');
}

// ---------- the live feed ----------

async function follow() {
  for (;;) {
    // Another key entered: this stream (read with the old one) ends and the next uses the new key.
    const stream = new AbortController();
    state.stream = stream;
    try {
      const response = await fetch('/api/overview/stream', {
        headers: readHeaders(),
        cache: 'no-store',
        signal: stream.signal,
      });
      if (response.status === 401) {
        showGatewayLost('the gateway wants an API key: enter it above', 'API key needed');
        await waitForKey();
        continue;
      }
      if (!response.ok || !response.body) throw new Error(await failure(response));
      setFeed('up', 'Live');
      // Quiet is counted from the connection, not from the last message of an earlier one: the
      // first update may take a moment (the gateway reads the fleet for it).
      state.lastMessageAt = Date.now();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      // Each connection starts from the whole overview the gateway sends first.
      const overview = new OverviewState();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) throw new Error('stream ended');
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const lines = block.split('\n');
          const event =
            lines
              .find((line) => line.startsWith('event:'))
              ?.slice(6)
              .trim() ?? 'message';
          const data = lines
            .filter((line) => line.startsWith('data:'))
            .map((line) => line.slice(5).trimStart())
            .join('\n');
          if (data) {
            state.lastMessageAt = Date.now();
            // An update was missed: this delta does not apply. A new connection starts whole.
            // Aborted, the next read throws and the loop connects again at once.
            if (!overview.apply(event, JSON.parse(data))) {
              stream.abort();
              break;
            }
            // Updates flow again after a quiet spell: live again (render clears the banner).
            if (document.body.dataset.feed !== 'up') setFeed('up', 'Live');
            const m = overview.overview();
            if (m) render(m);
          }
        }
      }
    } catch (err) {
      if (stream.signal.aborted) continue;
      showGatewayLost(err instanceof Error ? err.message : String(err));
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
    }
  }
}

let keyWaiter;
function waitForKey() {
  return new Promise((resolve) => {
    keyWaiter = resolve;
  });
}

// ---------- control requests ----------

function renderRequests() {
  reconcile(
    $('#requests'),
    state.requests,
    (r) => r.seq,
    () => el('li', {}, el('strong'), el('span')),
    (li, r) => {
      setAttr(li, 'data-status', r.status);
      setAttr(li, 'data-request', r.id ?? '');
      setText(li.firstElementChild, r.label);
      setText(li.lastElementChild, ` — ${r.status}${r.reason ? `: ${r.reason}` : ''}`);
    },
  );
}

/** Says what went wrong with the operator's last action where it is seen: under the header. */
function showNotice(text) {
  setText($('#notice-text'), text);
  setHidden($('#notice'), text === '');
}

/** The error an answer carries: its status and the gateway's message (a 403's names the scope). */
async function failure(response) {
  const answer = await response.json().catch(() => ({}));
  return `${response.status} ${answer.message ?? answer.code ?? response.statusText}`.trim();
}

/**
 * Sends one state-changing request (always a JSON body) and follows it: a control request the
 * scheduler answers later (202 with an id) is polled until its outcome; a halt or a pause is done
 * when the gateway answers. A refusal is shown, never swallowed.
 */
async function control(path, body, label) {
  const entry = { seq: ++state.requestSeq, label, status: 'sending', id: null, reason: null };
  state.requests.unshift(entry);
  state.requests.length = Math.min(state.requests.length, REQUESTS_SHOWN);
  showNotice('');
  renderRequests();
  const fail = (reason) => {
    entry.status = 'error';
    entry.reason = reason;
    showNotice(`${label} failed: ${reason}`);
  };
  try {
    const response = await fetch(path, {
      method: 'POST',
      headers: writeHeaders(),
      body: JSON.stringify(body ?? {}),
    });
    if (!response.ok) {
      fail(await failure(response));
      return;
    }
    const answer = await response.json().catch(() => ({}));
    if (response.status !== 202 || typeof answer.request_id !== 'string') {
      entry.status = 'accepted';
      return;
    }
    entry.id = answer.request_id;
    entry.status = 'queued';
    renderRequests();
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const poll = await fetch(`/api/control/${encodeURIComponent(entry.id)}`, {
        headers: readHeaders(),
      });
      if (poll.status === 202) continue;
      if (!poll.ok) {
        fail(await failure(poll));
        return;
      }
      const outcome = await poll.json();
      entry.status = outcome.status;
      entry.reason = outcome.reason;
      if (outcome.status !== 'accepted')
        showNotice(`${label} ${outcome.status}: ${outcome.reason ?? ''}`);
      return;
    }
    fail('no answer from the scheduler within 30 s');
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  } finally {
    renderRequests();
    void refreshAudit();
  }
}

// ---------- the audit trail ----------

const audit = { reading: undefined, again: false, polling: true, readAt: 0 };

function targetText(t) {
  if (t.portfolio_id && t.target_node_id) return `${t.portfolio_id} → ${t.target_node_id}`;
  if (t.portfolio_id) return t.portfolio_id;
  if (t.node_id) return `node ${t.node_id}`;
  return 'whole fleet';
}

function renderAudit(entries, status) {
  setText($('#audit-status'), status);
  reconcile(
    $('#audit tbody'),
    entries,
    (e) => e.id ?? `${e.at} ${e.actor} ${e.action} ${e.outcome} ${e.request_id ?? ''}`,
    (e) =>
      // An audit entry is never rewritten: made once. One the gateway could not decode says so.
      e.error !== undefined
        ? el(
            'tr',
            { 'data-outcome': 'unreadable' },
            el('td', { text: e.id }),
            el('td', { colspan: 4, class: 'error', text: `unreadable entry: ${e.error}` }),
          )
        : el(
            'tr',
            { 'data-action': e.action, 'data-outcome': e.outcome, 'data-actor': e.actor },
            el('td', { text: dateTime(e.at) }),
            el('td', { 'data-field': 'actor', text: e.actor }),
            el('td', { 'data-field': 'action', text: e.action }),
            el('td', { 'data-field': 'target', text: targetText(e.target) }),
            el('td', {
              'data-field': 'outcome',
              text: `${e.outcome}${e.reason ? `: ${e.reason}` : ''}`,
            }),
          ),
    () => {},
    () => emptyRow(5, 'Nothing recorded yet.'),
  );
}

/**
 * Reads the latest entries. A key without the admin scope gets the gateway's 403: the panel says
 * so and asks again only when another key is entered (polling a refusal only fills the logs).
 */
async function readAudit() {
  const response = await fetch(`/api/audit?limit=${AUDIT_LIMIT}`, {
    headers: readHeaders(),
    cache: 'no-store',
  });
  if (response.status === 401 || response.status === 403 || response.status === 404) {
    const why = await failure(response);
    const text =
      response.status === 401
        ? 'The audit trail needs an API key with the admin scope: enter one above.'
        : response.status === 403
          ? `This key may not read the audit trail (it needs the admin scope): ${why}`
          : `This gateway has no audit trail (${why}).`;
    renderAudit([], text);
    $('#audit').hidden = true;
    return false;
  }
  if (!response.ok) {
    setText($('#audit-status'), `Could not read the audit trail: ${await failure(response)}`);
    return true;
  }
  const answer = await response.json();
  const entries = Array.isArray(answer) ? answer : (answer.entries ?? []);
  $('#audit').hidden = false;
  renderAudit(entries, `${entries.length} latest, read ${time(new Date().toISOString())}`);
  return true;
}

/**
 * One read at a time; a refresh asked for during a read runs right after it. Every
 * `AUDIT_REFRESH_MS` after the last read another follows, unless that one was refused.
 */
async function refreshAudit() {
  if (audit.reading) {
    audit.again = true;
    return;
  }
  audit.reading = readAudit().catch((err) => {
    setText(
      $('#audit-status'),
      `Could not read the audit trail: ${err instanceof Error ? err.message : String(err)}`,
    );
    return true;
  });
  audit.polling = await audit.reading;
  audit.readAt = Date.now();
  audit.reading = undefined;
  if (audit.again) {
    audit.again = false;
    await refreshAudit();
  }
}

// ---------- silences ----------

const silences = { reading: undefined, again: false, readAt: 0 };

const matchText = (m) =>
  Object.entries(m)
    .map(([field, values]) => `${field} ${values.join(', ')}`)
    .join(' · ');

function renderSilences(active, status) {
  setText($('#silences-status'), status);
  reconcile(
    $('#silences tbody'),
    active,
    (s) => s.id,
    (s) =>
      el(
        'tr',
        { 'data-silence': s.id },
        el('td', { 'data-field': 'matches', text: matchText(s.matchers) }),
        el('td', { 'data-field': 'until', text: dateTime(s.ends_at) }),
        el('td', { 'data-field': 'by', text: s.created_by }),
        el('td', { 'data-field': 'why', text: s.comment }),
        el(
          'td',
          {},
          el('button', {
            type: 'button',
            'data-action': 'end-silence',
            text: 'End',
            onclick: () => void endSilence(s.id),
          }),
        ),
      ),
    () => {},
    () => emptyRow(5, 'No active silence.'),
  );
}

/** Reads the active silences; a key that may not read them is told once, not polled. */
async function readSilences() {
  const response = await fetch('/api/silences', { headers: readHeaders(), cache: 'no-store' });
  if (!response.ok) {
    renderSilences([], `Could not read the silences: ${await failure(response)}`);
    return;
  }
  const answer = await response.json();
  renderSilences(
    answer.active ?? [],
    `${(answer.active ?? []).length} active, read ${time(new Date().toISOString())}`,
  );
}

async function refreshSilences() {
  if (silences.reading) {
    silences.again = true;
    return;
  }
  silences.reading = readSilences().catch((err) =>
    setText(
      $('#silences-status'),
      `Could not read the silences: ${err instanceof Error ? err.message : String(err)}`,
    ),
  );
  await silences.reading;
  silences.readAt = Date.now();
  silences.reading = undefined;
  if (silences.again) {
    silences.again = false;
    await refreshSilences();
  }
}

/** A field of the form as matcher values (commas separate names), or undefined when empty. */
const namesOf = (input) => {
  const names = input.value
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '');
  return names.length === 0 ? undefined : names;
};

async function makeSilence() {
  const matchers = {};
  for (const field of ['node', 'portfolio', 'kind']) {
    const names = namesOf($(`#silence-${field}`));
    if (names) matchers[field] = names;
  }
  if (Object.keys(matchers).length === 0) {
    showNotice('A silence needs a node, a portfolio or a kind.');
    return;
  }
  const comment = $('#silence-comment').value.trim();
  const response = await fetch('/api/silences', {
    method: 'POST',
    headers: writeHeaders(),
    body: JSON.stringify({
      matchers,
      duration: $('#silence-duration').value,
      ...(comment ? { comment } : {}),
    }),
  });
  if (!response.ok) {
    showNotice(`Silence refused: ${await failure(response)}`);
    return;
  }
  showNotice('');
  for (const field of ['node', 'portfolio', 'kind', 'comment']) $(`#silence-${field}`).value = '';
  await refreshSilences();
  void refreshAudit();
}

async function endSilence(id) {
  const response = await fetch(`/api/silences/${encodeURIComponent(id)}/expire`, {
    method: 'POST',
    headers: writeHeaders(),
    body: '{}',
  });
  if (!response.ok) showNotice(`Could not end the silence: ${await failure(response)}`);
  await refreshSilences();
  void refreshAudit();
}

// ---------- start ----------

$('#api-key').value = state.key;
$('#key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  state.key = $('#api-key').value.trim();
  if (state.key) sessionStorage.setItem(KEY_STORAGE, state.key);
  else sessionStorage.removeItem(KEY_STORAGE);
  if (keyWaiter) {
    keyWaiter();
    keyWaiter = undefined;
  } else state.stream?.abort();
  void refreshAudit();
  void refreshSilences();
});
$('#silence-form').addEventListener('submit', (event) => {
  event.preventDefault();
  void makeSilence();
});

const haltDialog = $('#halt-dialog');
$('#halt-open').addEventListener('click', () => {
  $('#halt-reason').value = '';
  // Escape closes without a value: a stale "halt" from the last time must not count.
  haltDialog.returnValue = '';
  haltDialog.showModal();
  $('#halt-reason').focus();
});
haltDialog.addEventListener('close', () => {
  if (haltDialog.returnValue !== 'halt') return;
  const reason = $('#halt-reason').value.trim();
  void control('/api/fleet/halt', reason ? { reason } : {}, 'halt trading');
});
$('#halt-cancel').addEventListener('click', () => haltDialog.close('cancel'));
$('#resume-trading').addEventListener('click', () => {
  void control('/api/fleet/resume', {}, 'resume trading');
});
$('#notice-close').addEventListener('click', () => showNotice(''));

// A stream that stays open but goes quiet is as bad as a closed one: say so after 5 s.
setInterval(() => {
  if (document.body.dataset.feed === 'up' && Date.now() - state.lastMessageAt > 5000)
    showGatewayLost('no update for 5 s');
}, 1000);
setInterval(() => {
  if (audit.polling && !audit.reading && Date.now() - audit.readAt >= AUDIT_REFRESH_MS)
    void refreshAudit();
}, 1000);
setInterval(() => {
  if (!silences.reading && Date.now() - silences.readAt >= AUDIT_REFRESH_MS) void refreshSilences();
}, 1000);
void follow();
void refreshAudit();
void refreshSilences();
