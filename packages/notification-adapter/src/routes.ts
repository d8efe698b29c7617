import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import { NOTIFICATION_LEVELS, type Notification } from '@ginkgo-live/state-keys';
import { KINDS } from './catalogue.ts';
import type { Sink } from './sinks.ts';

/** What a route matches on. */
export const MATCH_FIELDS = ['kind', 'level', 'node', 'portfolio', 'status'] as const;
export type MatchField = (typeof MATCH_FIELDS)[number];

/** One route: a notification matching every field given goes to `sinks`. */
export interface Route {
  /** Per field, the values that match (any of them); a value may end in `*` (a prefix). */
  match: Partial<Record<MatchField, string[]>>;
  sinks: string[];
  /** Where it is in the file (1-based), for the log and for errors. */
  line: number;
}

/** The routes, first match wins, and the sinks of a notification no route matched. */
export interface Routing {
  routes: Route[];
  defaultSinks: string[];
  /** The file the routes came from (for the log). */
  file: string;
}

/** A problem in the routes file: its line (1-based) and what is wrong. */
export interface RoutesProblem {
  line: number;
  problem: string;
}

const STATUSES = ['firing', 'resolved'];

/** The value a field of a notification has, or null where the notification has none. */
function valueOf(n: Notification, field: MatchField): string | null {
  switch (field) {
    case 'kind':
      return n.kind;
    case 'level':
      return n.level;
    case 'node':
      return n.subject.node_id;
    case 'portfolio':
      return n.subject.portfolio_id;
    case 'status':
      return n.status;
  }
}

const matchesValue = (pattern: string, value: string): boolean =>
  pattern.endsWith('*') ? value.startsWith(pattern.slice(0, -1)) : value === pattern;

/**
 * Whether a notification fits every field given (any of its values; a value ending in `*` is a
 * prefix). A field the notification does not have (no node) never fits. Routes and silences match
 * alike.
 */
export function matchesFields(
  match: Partial<Record<MatchField, readonly string[]>>,
  n: Notification,
): boolean {
  return Object.entries(match).every(([field, patterns]) => {
    const value = valueOf(n, field as MatchField);
    return value !== null && patterns.some((p) => matchesValue(p, value));
  });
}

/** The route a notification takes: the first that matches it, or undefined (the default). */
export function routeOf(routing: Routing, n: Notification): Route | undefined {
  return routing.routes.find((route) => matchesFields(route.match, n));
}

/** The sink names a notification goes to. */
export function sinksFor(routing: Routing, n: Notification): string[] {
  return routeOf(routing, n)?.sinks ?? routing.defaultSinks;
}

/**
 * Reads a routes file (YAML):
 *
 *     routes:
 *       - match: { level: critical }
 *         sinks: [email, webhook]
 *       - match: { kind: [queue_usage_high, queue_full], node: 'node-3*' }
 *         sinks: [slack]
 *     default: [slack, log]
 *
 * First match wins; `default` (required) takes the rest. Kinds and levels must be ones the
 * catalogue has, sinks ones this process has (`sinks`); anything else is refused with its line.
 */
export function parseRoutes(
  text: string,
  file: string,
  sinks: readonly string[],
): Routing | RoutesProblem {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  const [syntax] = doc.errors;
  if (syntax !== undefined)
    return { line: syntax.linePos?.[0].line ?? 1, problem: syntax.message.split('\n')[0] ?? '' };
  const lineOf = (node: Node | null | undefined): number =>
    node?.range === undefined || node.range === null ? 1 : lines.linePos(node.range[0]).line;
  const root = doc.contents;
  if (!isMap(root))
    return { line: lineOf(root), problem: 'must be a mapping with `routes` and `default`' };

  const problem = (node: Node | null | undefined, text: string): RoutesProblem => ({
    line: lineOf(node),
    problem: text,
  });
  /** A string, or a list of strings, as a list; or what is wrong. */
  const strings = (node: unknown, what: string): string[] | RoutesProblem => {
    if (isScalar(node) && typeof node.value === 'string' && node.value !== '') return [node.value];
    if (isSeq(node)) {
      const out: string[] = [];
      for (const item of node.items) {
        if (!isScalar(item) || typeof item.value !== 'string' || item.value === '')
          return problem(isScalar(item) ? item : node, `${what}: each must be a name`);
        out.push(item.value);
      }
      return out;
    }
    return problem(node as Node, `${what} must be a name or a list of names`);
  };
  const sinkList = (node: unknown, what: string): string[] | RoutesProblem => {
    if (isSeq(node) && node.items.length === 0) return [];
    const names = strings(node, what);
    if (!Array.isArray(names)) return names;
    const unknown = names.find((name) => !sinks.includes(name));
    if (unknown !== undefined)
      return problem(
        node as Node,
        `${what}: no sink "${unknown}" is configured here (configured: ${sinks.join(', ') || 'none'})`,
      );
    return names;
  };

  let defaultSinks: string[] | undefined;
  const routes: Route[] = [];
  for (const pair of root.items) {
    const key = isScalar(pair.key) ? pair.key.value : undefined;
    if (key === 'default') {
      const list = sinkList(pair.value, '`default`');
      if (!Array.isArray(list)) return list;
      defaultSinks = list;
    } else if (key === 'routes') {
      if (!isSeq(pair.value)) return problem(pair.value, '`routes` must be a list');
      for (const item of pair.value.items) {
        if (!isMap(item))
          return problem(item, 'a route must be a mapping with `match` and `sinks`');
        const route: Route = { match: {}, sinks: [], line: lineOf(item) };
        let hasSinks = false;
        for (const field of item.items) {
          const name = isScalar(field.key) ? field.key.value : undefined;
          if (name === 'sinks') {
            const list = sinkList(field.value, '`sinks`');
            if (!Array.isArray(list)) return list;
            route.sinks = list;
            hasSinks = true;
          } else if (name === 'match') {
            if (!isMap(field.value)) return problem(field.value, '`match` must be a mapping');
            for (const m of field.value.items) {
              const on = isScalar(m.key) ? String(m.key.value) : '';
              if (!(MATCH_FIELDS as readonly string[]).includes(on))
                return problem(
                  m.key,
                  `cannot match on "${on}" (one of ${MATCH_FIELDS.join(', ')})`,
                );
              const values = strings(m.value, `\`${on}\``);
              if (!Array.isArray(values)) return values;
              const allowed =
                on === 'kind'
                  ? Object.keys(KINDS)
                  : on === 'level'
                    ? [...NOTIFICATION_LEVELS]
                    : on === 'status'
                      ? STATUSES
                      : undefined;
              const bad =
                allowed === undefined ? undefined : values.find((v) => !allowed.includes(v));
              if (allowed !== undefined && bad !== undefined)
                return problem(m.value, `no ${on} "${bad}" (one of ${allowed.join(', ')})`);
              route.match[on as MatchField] = values;
            }
          } else {
            return problem(field.key, `a route has \`match\` and \`sinks\`, not "${String(name)}"`);
          }
        }
        if (!hasSinks) return problem(item, 'a route needs `sinks` (an empty list records only)');
        routes.push(route);
      }
    } else {
      return problem(pair.key, `unknown key "${String(key)}" (routes, default)`);
    }
  }
  if (defaultSinks === undefined)
    return problem(root, 'needs `default`: the sinks of a notification no route matches');
  return { routes, defaultSinks, file };
}

/**
 * The sinks, each delivering only what the routes send it (a notification routed elsewhere is
 * passed over) — for the direct path of a Redis outage, which has no delivery record.
 */
export function routedSinks(sinks: readonly Sink[], routing: Routing | undefined): Sink[] {
  if (routing === undefined) return [...sinks];
  return sinks.map((sink) => ({
    name: sink.name,
    deliver: (n: Notification) =>
      sinksFor(routing, n).includes(sink.name) ? sink.deliver(n) : Promise.resolve(),
  }));
}
