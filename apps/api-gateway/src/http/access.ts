import { timingSafeEqual } from 'node:crypto';
import express, { type Request, type RequestHandler, type Response } from 'express';
import { isLoopbackHost, SECURITY_DEFAULTS, type SecurityConfig } from '../config.ts';
import { AppError } from './errors.ts';
import { applyLimit, clientAddress, RateLimiter, requestWeight, WEIGHTS } from './limits.ts';
import { SCOPES, type Scope } from './scopes.ts';
import { cors, csrfCheck, digest, hostCheck, presentedKey } from './security.ts';

export { SCOPES, type Scope };

/** Who made a request: the key's name and scope, or `anonymous` when the gateway runs without keys. */
export interface Principal {
  name: string;
  scope: Scope;
  /** The client address the gateway saw (after `trust proxy`). */
  address: string;
}

/** The gateway's access control, as the routers see it. */
export interface Access {
  /**
   * Middleware: 401 without a valid key, 403 naming the missing scope when the key's is lower; on
   * success the principal is on `res.locals` for `principalOf`.
   */
  require(scope: Scope): RequestHandler;
}

/** The access control as `createApp` mounts it: `guard` goes before every route. */
export interface GatewayAccess extends Access {
  /**
   * Before any route, in this order: the rate limit — a request with a valid key is charged to that
   * key only, any other (no key, a wrong one: plus `WEIGHTS.failedKey`) to its client address —,
   * the `Host` allowlist, CORS, and the cross-site request check. A keyless gateway that does not
   * trust proxies refuses a request a proxy forwarded.
   */
  readonly guard: RequestHandler;
  /** How many clients the limiters hold a window for: per address (capped) and per key. */
  limiterSizes(): { addresses: number; keys: number };
}

const PRINCIPAL = 'principal';
/** The configured key `guard` matched (and charged) for this request. */
const MATCHED = 'matchedKey';

/** Headers a reverse proxy adds: a keyless gateway that does not trust proxies refuses them. */
const FORWARDING_HEADERS = ['x-forwarded-for', 'forwarded', 'x-real-ip'] as const;
const ADDRESS_LIMIT_MESSAGE = 'Too many requests from this address; slow down';
const keyLimitMessage = (name: string): string => `Too many requests for key ${name}; slow down`;

/** The principal `require` stored for this request; throws when no `require` ran (a routing bug). */
export function principalOf(res: Response): Principal {
  const principal = res.locals[PRINCIPAL] as Principal | undefined;
  if (principal === undefined) throw new Error('principalOf: no access check ran for this route');
  return principal;
}

/** Whether a key of scope `held` may do what `needed` allows. */
export function scopeAllows(held: Scope, needed: Scope): boolean {
  if (needed === 'metrics') return true; // every key may scrape
  if (held === 'metrics') return false;
  return SCOPES.indexOf(held) >= SCOPES.indexOf(needed);
}

const isLoopbackAddress = (address: string): boolean =>
  isLoopbackHost(address.replace(/^::ffff:/i, ''));

/**
 * Named, scoped keys (`GATEWAY_API_KEYS`, `GATEWAY_API_KEYS_FILE`), compared by SHA-256 digest in
 * constant time, every key each time. Without keys the principal is `anonymous` with every scope,
 * for clients on this machine only (unless `GATEWAY_AUTH=off`): a reverse proxy on this machine
 * must not open a keyless gateway to the world (`guard` refuses forwarded requests). Limits, in
 * `guard`: a valid key's requests count against that key only; every other request against its
 * client address (a key that matches none adds `WEIGHTS.failedKey`).
 */
export function createAccess(
  security: SecurityConfig,
  options: { maxAddresses?: number } = {},
): GatewayAccess {
  const keys = security.apiKeys.map((k) => ({
    name: k.name,
    scope: k.scope,
    digest: digest(k.secret),
  }));
  const open = keys.length === 0;
  const authOff = (security.auth ?? SECURITY_DEFAULTS.auth) === 'off';
  // Keyed by client address (before authentication) and by key name (after): the first is capped,
  // the second holds at most one window per configured key (and `anonymous`).
  const byAddress = new RateLimiter({
    limit: security.addressRateLimitPerMinute ?? SECURITY_DEFAULTS.addressRateLimitPerMinute,
    ...(options.maxAddresses === undefined ? {} : { maxEntries: options.maxAddresses }),
  });
  const byKey = new RateLimiter({ limit: security.rateLimitPerMinute });

  // A gateway without keys serves this machine only: its processes could stop it anyway, and its
  // tools poll it freely. GATEWAY_AUTH=off (any client) is limited as usual.
  const unlimited = (req: Request): boolean =>
    open && !authOff && isLoopbackAddress(req.ip ?? req.socket.remoteAddress ?? '');

  const trustsProxy = (security.trustProxy ?? SECURITY_DEFAULTS.trustProxy) !== false;

  /** The configured key whose secret was presented; every key is compared, every time. */
  const matchKey = (presented: string): (typeof keys)[number] | undefined => {
    const given = digest(presented);
    let match: (typeof keys)[number] | undefined;
    // Every key, every time: how long the check takes says nothing about which key came close.
    for (const key of keys) if (timingSafeEqual(key.digest, given)) match = key;
    return match;
  };

  const guard = express.Router();
  guard.use((req, res, next) => {
    // A keyless gateway trusts loopback clients; a reverse proxy on this machine is one, and would
    // make every client of the world one. Its forwarding headers give it away.
    if (open && !authOff && !trustsProxy && req.path !== '/api/health') {
      const header = FORWARDING_HEADERS.find((h) => req.get(h) !== undefined);
      if (header !== undefined) {
        next(
          new AppError(
            'FORBIDDEN',
            `This gateway has no API keys and serves only its own machine, but this request came through a proxy (${header}); set GATEWAY_API_KEYS, or GATEWAY_TRUST_PROXY so that the client's own address is checked`,
            { header },
          ),
        );
        return;
      }
    }
    const weight = requestWeight(req);
    if (unlimited(req)) {
      next();
      return;
    }
    const presented = open ? undefined : presentedKey(req);
    const match = presented === undefined ? undefined : matchKey(presented);
    if (match !== undefined) {
      // A valid key spends its own allowance only: a stranger behind the same address (a NAT, a
      // proxy) cannot use it up, and cannot keep the key's holder from the kill switch.
      res.locals[MATCHED] = match;
      if (applyLimit(res, byKey.take(match.name, weight), keyLimitMessage(match.name))) next();
      return;
    }
    const address = clientAddress(req);
    if (!applyLimit(res, byAddress.take(address, weight), ADDRESS_LIMIT_MESSAGE)) return;
    // A key that matches none costs more: guessing is slow. It is refused later, by `require`.
    if (presented !== undefined) byAddress.take(address, WEIGHTS.failedKey);
    next();
  });
  guard.use(hostCheck(security));
  guard.use(cors(security));
  guard.use(csrfCheck(security));

  /** The principal of a request, or the error that refuses it. */
  const authenticate = (req: Request, res: Response): Principal | AppError => {
    const address = req.ip ?? req.socket.remoteAddress ?? 'unknown';
    if (open) {
      if (authOff || isLoopbackAddress(address))
        return { name: 'anonymous', scope: 'admin', address };
      return new AppError(
        'FORBIDDEN',
        'This gateway has no API keys and serves only its own machine',
        { address },
      );
    }
    const presented = presentedKey(req);
    if (presented === undefined)
      return security.publicReads
        ? { name: 'anonymous', scope: 'read', address }
        : new AppError('UNAUTHORIZED', 'Missing or invalid API key');
    const match = (res.locals[MATCHED] as (typeof keys)[number] | undefined) ?? matchKey(presented);
    if (match === undefined) return new AppError('UNAUTHORIZED', 'Missing or invalid API key');
    return { name: match.name, scope: match.scope, address };
  };

  return {
    guard,
    limiterSizes: () => ({ addresses: byAddress.size, keys: byKey.size }),
    require(scope) {
      return (req, res, next) => {
        const principal = authenticate(req, res);
        if (principal instanceof AppError) {
          next(principal);
          return;
        }
        // Charged before the scope is checked: a key refused for its scope still spends its
        // allowance (each refusal of a control request is audited). A matched key was charged by
        // `guard`; `anonymous` is charged here.
        if (
          res.locals[MATCHED] === undefined &&
          !unlimited(req) &&
          !applyLimit(
            res,
            byKey.take(principal.name, requestWeight(req)),
            keyLimitMessage(principal.name),
          )
        )
          return;
        if (!scopeAllows(principal.scope, scope)) {
          // `anonymous` with `read` (GATEWAY_PUBLIC_READS) lacks a key rather than a scope.
          next(
            principal.name === 'anonymous'
              ? new AppError('UNAUTHORIZED', 'Missing or invalid API key')
              : new AppError('FORBIDDEN', `This key (${principal.name}) lacks the ${scope} scope`, {
                  required_scope: scope,
                  key: principal.name,
                }),
          );
          return;
        }
        res.locals[PRINCIPAL] = principal;
        next();
      };
    },
  };
}
