// ginkgo-live operations page. Plain ES module, no build step, no dependencies: it reads the
// gateway's server-sent events (/api/overview/stream, shaped by the gateway) and renders them.
// Reads go through fetch (not EventSource) so that an API key can travel in a header.

const KEY_STORAGE = 'ginkgo-live.api-key';
const RECONNECT_MS = 2000;
const $ = (selector) => document.querySelector(selector);

const state = {
  key: sessionStorage.getItem(KEY_STORAGE) ?? '',
  last: undefined,
  lastMessageAt: 0,
  requests: [],
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

function headers(extra = {}) {
  return state.key ? { 'X-API-Key': state.key, ...extra } : extra;
}

function queueBar(usage, level, label) {
  const width = usage === null || usage === undefined ? 0 : Math.min(100, Math.round(usage * 100));
  return el(
    'span',
    { class: 'queue' },
    el(
      'span',
      {
        class: 'bar',
        'data-level': level,
        role: 'meter',
        'aria-valuemin': 0,
        'aria-valuemax': 100,
        'aria-valuenow': width,
        'aria-label': `queue ${width} % full`,
      },
      el('span', { style: `width:${width}%` }),
    ),
    el('span', { class: 'level-label', 'data-level': level, text: label }),
  );
}

// ---------- rendering ----------

function renderSummary(m) {
  const s = m.summary;
  const cards = [
    ['Nodes online', `${s.nodes_online} / ${s.nodes_total}`, s.nodes_lost > 0],
    ['Portfolios running', `${s.portfolios_running} / ${s.portfolios_total}`, false],
    ['Orphaned', String(s.portfolios_orphaned), s.portfolios_orphaned > 0],
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
  $('#summary').replaceChildren(
    ...cards.map(([label, value, bad]) =>
      el(
        'div',
        { 'data-card': label },
        el('dt', { text: label }),
        el('dd', { text: value, 'data-level': bad ? 'critical' : 'ok' }),
      ),
    ),
  );
}

function sparkline(title, points, pick, format) {
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
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('role', 'img');
  const latest = values.at(-1);
  svg.setAttribute('aria-label', `${title}: now ${format(latest)}, peak ${format(max)}`);
  const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
  line.setAttribute('points', coords);
  svg.append(line);
  return el(
    'figure',
    { class: 'chart' },
    el(
      'figcaption',
      {},
      `${title} `,
      el('strong', { text: format(latest) }),
      el('span', { class: 'muted small', text: ` peak ${format(max)}` }),
    ),
    svg,
  );
}

function renderCharts(m) {
  const points = m.history ?? [];
  $('#charts').replaceChildren(
    sparkline(
      'Queued events',
      points,
      (p) => p.queue_depth_total,
      (v) => num(v),
    ),
    sparkline(
      'Fullest queue',
      points,
      (p) => p.queue_usage_max,
      (v) => pct(v),
    ),
    sparkline(
      'Events / s',
      points,
      (p) => p.events_per_second,
      (v) => num(v, 1),
    ),
  );
}

function renderNodes(m) {
  const rows = m.nodes.map((n) => {
    // One status, the gateway's: online, draining or lost.
    const draining = n.status === 'draining';
    const canControl = n.status !== 'lost';
    return el(
      'tr',
      { 'data-node': n.node_id, 'data-status': n.status },
      el('th', { scope: 'row', text: n.node_id }),
      el(
        'td',
        {},
        el('span', { class: 'state', 'data-state': n.status, text: n.status }),
        el('span', {
          class: 'muted small',
          text:
            n.heartbeat_age_ms === null
              ? ' never heard from'
              : n.status === 'lost'
                ? ` last heartbeat ${age(n.heartbeat_age_ms)} ago`
                : ` heartbeat ${age(n.heartbeat_age_ms)} ago`,
        }),
      ),
      el('td', { class: 'num', text: `${n.portfolio_count} / ${n.capacity ?? dash}` }),
      el('td', {}, queueBar(n.queue_usage_max, n.queue_level, pct(n.queue_usage_max))),
      el('td', { class: 'num', text: num(n.events_per_second, 1) }),
      el('td', {
        class: 'num',
        text: n.cpu_percent === null ? dash : `${num(n.cpu_percent, 1)} %`,
      }),
      el('td', { class: 'num', text: bytes(n.memory_rss_bytes) }),
      el('td', { class: 'num', text: n.redis_failures ?? dash }),
      el(
        'td',
        {},
        canControl
          ? el('button', {
              type: 'button',
              'data-action': draining ? 'undrain' : 'drain',
              text: draining ? 'Undrain' : 'Drain',
              'aria-label': `${draining ? 'Undrain' : 'Drain'} ${n.node_id}`,
              onclick: () =>
                control(
                  `/api/nodes/${encodeURIComponent(n.node_id)}/${draining ? 'undrain' : 'drain'}`,
                  undefined,
                  `${draining ? 'undrain' : 'drain'} ${n.node_id}`,
                ),
            })
          : null,
      ),
    );
  });
  $('#nodes tbody').replaceChildren(
    ...(rows.length > 0
      ? rows
      : [
          el(
            'tr',
            {},
            el('td', { colspan: 9, class: 'muted', text: 'No node has announced itself.' }),
          ),
        ]),
  );
}

function renderPortfolios(m) {
  const targets = m.nodes.filter((n) => n.status === 'online').map((n) => n.node_id);
  const rows = m.portfolios.map((p) => {
    const select = el(
      'select',
      { 'aria-label': `Target node for ${p.portfolio_id}` },
      ...targets.filter((t) => t !== p.node_id).map((t) => el('option', { value: t, text: t })),
    );
    const depth = p.queue_depth === null ? dash : `${p.queue_depth} / ${p.queue_capacity ?? dash}`;
    return el(
      'tr',
      { 'data-portfolio': p.portfolio_id, 'data-level': p.queue_level },
      el('th', { scope: 'row', text: p.portfolio_id, title: p.name ?? '' }),
      el('td', {}, el('span', { class: 'state', 'data-state': p.status, text: p.status })),
      el('td', {
        'data-field': 'node',
        text: p.node_id ?? (p.reason ? `none (${p.reason})` : dash),
      }),
      el('td', {}, queueBar(p.queue_usage, p.queue_level, depth)),
      el('td', { class: 'num', text: num(p.events_per_second, 1) }),
      el('td', {
        class: 'num',
        text:
          p.latency_p50_ms === null
            ? dash
            : `${num(p.latency_p50_ms, 1)} / ${num(p.latency_p99_ms, 1)} ms`,
      }),
      el('td', { class: 'num', text: num(p.cash, 2) }),
      el('td', { class: 'num', text: num(p.total_value, 2) }),
      el('td', { class: 'error', text: p.last_error ?? '' }),
      el(
        'td',
        {},
        select.options.length > 0
          ? el(
              'span',
              {},
              select,
              ' ',
              el('button', {
                type: 'button',
                text: 'Move',
                'aria-label': `Move ${p.portfolio_id}`,
                onclick: () =>
                  control(
                    '/api/schedule/migrate',
                    { portfolio_id: p.portfolio_id, target_node: select.value },
                    `migrate ${p.portfolio_id} to ${select.value}`,
                  ),
              }),
            )
          : null,
      ),
    );
  });
  $('#portfolios tbody').replaceChildren(
    ...(rows.length > 0
      ? rows
      : [
          el(
            'tr',
            {},
            el('td', { colspan: 10, class: 'muted', text: 'No portfolio in the catalog.' }),
          ),
        ]),
  );
}

function renderNotifications(m) {
  const items = m.notifications.map((n) =>
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
  );
  $('#notifications').replaceChildren(
    ...(items.length > 0 ? items : [el('li', { class: 'muted', text: 'No notification yet.' })]),
  );
}

function renderStatus(m) {
  const redis = $('#redis-status');
  redis.dataset.state = m.redis.status;
  redis.textContent = m.redis.status === 'up' ? 'Redis: up' : 'Redis: down';
  const banner = $('#banner');
  const main = $('#main');
  if (m.stale) {
    banner.hidden = false;
    banner.textContent =
      `The gateway cannot read Redis (since ${time(m.redis.down_since)}): ` +
      (m.data_as_of
        ? `the numbers below are from ${time(m.data_as_of)}, not current.`
        : 'no data yet.');
    main.classList.add('stale');
  } else {
    banner.hidden = true;
    banner.textContent = '';
    main.classList.remove('stale');
  }
  $('#updated').textContent = `updated ${time(m.generated_at)}`;
}

function render(m) {
  state.last = m;
  document.body.dataset.redis = m.redis.status;
  renderStatus(m);
  renderSummary(m);
  renderCharts(m);
  renderNodes(m);
  renderPortfolios(m);
  renderNotifications(m);
}

function setFeed(stateName, text) {
  const feed = $('#feed-status');
  feed.dataset.state = stateName;
  feed.textContent = text;
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
    try {
      const response = await fetch('/api/overview/stream', {
        headers: headers(),
        cache: 'no-store',
      });
      if (response.status === 401) {
        showGatewayLost('the gateway wants an API key: enter it above', 'API key needed');
        await waitForKey();
        continue;
      }
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      setFeed('up', 'Live');
      // Quiet is counted from the connection, not from the last message of an earlier one: the
      // first update may take a moment (the gateway reads the fleet for it).
      state.lastMessageAt = Date.now();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) throw new Error('stream ended');
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const data = block
            .split('\n')
            .filter((line) => line.startsWith('data:'))
            .map((line) => line.slice(5).trimStart())
            .join('\n');
          if (data) {
            state.lastMessageAt = Date.now();
            // Updates flow again after a quiet spell: live again (render clears the banner).
            if (document.body.dataset.feed !== 'up') setFeed('up', 'Live');
            render(JSON.parse(data));
          }
        }
      }
    } catch (err) {
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
  $('#requests').replaceChildren(
    ...state.requests
      .slice(0, 10)
      .map((r) =>
        el(
          'li',
          { 'data-status': r.status, 'data-request': r.id ?? '' },
          el('strong', { text: r.label }),
          ` — ${r.status}${r.reason ? `: ${r.reason}` : ''}`,
        ),
      ),
  );
}

async function control(path, body, label) {
  const entry = { label, status: 'sending', id: null, reason: null };
  state.requests.unshift(entry);
  renderRequests();
  try {
    const response = await fetch(path, {
      method: 'POST',
      headers: headers(body ? { 'Content-Type': 'application/json' } : {}),
      body: body ? JSON.stringify(body) : undefined,
    });
    const answer = await response.json();
    if (response.status !== 202) {
      entry.status = 'error';
      entry.reason = `${response.status} ${answer.message ?? answer.code ?? ''}`.trim();
      renderRequests();
      return;
    }
    entry.id = answer.request_id;
    entry.status = 'queued';
    renderRequests();
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const poll = await fetch(`/api/control/${encodeURIComponent(entry.id)}`, {
        headers: headers(),
      });
      const outcome = await poll.json();
      if (poll.status === 202) continue;
      entry.status = poll.ok ? outcome.status : 'error';
      entry.reason = poll.ok ? outcome.reason : outcome.message;
      renderRequests();
      return;
    }
    entry.status = 'error';
    entry.reason = 'no answer from the scheduler within 30 s';
  } catch (err) {
    entry.status = 'error';
    entry.reason = err instanceof Error ? err.message : String(err);
  }
  renderRequests();
}

// ---------- start ----------

$('#api-key').value = state.key;
$('#key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  state.key = $('#api-key').value.trim();
  if (state.key) sessionStorage.setItem(KEY_STORAGE, state.key);
  else sessionStorage.removeItem(KEY_STORAGE);
  keyWaiter?.();
  keyWaiter = undefined;
});
// A stream that stays open but goes quiet is as bad as a closed one: say so after 5 s.
setInterval(() => {
  if (document.body.dataset.feed === 'up' && Date.now() - state.lastMessageAt > 5000)
    showGatewayLost('no update for 5 s');
}, 1000);
void follow();
