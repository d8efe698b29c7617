import { createHash } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { SECURITY_DEFAULTS, type SecurityConfig } from '../config.ts';
import { AppError } from './errors.ts';

/** SHA-256 of a secret: equal lengths, so that `timingSafeEqual` can compare any two. */
export const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

/** The key a request presents: `X-API-Key`, or `Authorization: Bearer <key>`. */
export function presentedKey(req: Request): string | undefined {
  const header = req.get('x-api-key');
  if (header !== undefined && header !== '') return header;
  const auth = req.get('authorization');
  const match = auth === undefined ? null : /^Bearer\s+(.+)$/i.exec(auth);
  return match?.[1];
}

/** The header a script sets on a state-changing request without a JSON body (a browser form cannot). */
export const REQUEST_HEADER = 'X-Ginkgo-Request';

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

// `undefined`: express 5's `req.hostname` for a request without a Host (its type says string).
const bare = (host: string | undefined): string =>
  (host ?? '').toLowerCase().replace(/^\[|\]$/g, '');

/** The host name of a `Host` header, without its port (`[::1]:8000` → `::1`). */
export function hostNameOf(header: string): string {
  const bracketed = /^\[([^\]]*)\]/.exec(header);
  return bare(bracketed?.[1] ?? header.split(':')[0] ?? '');
}

/**
 * Refuses a `Host` the gateway does not answer to (any port): a page on evil.example whose name
 * was made to point at 127.0.0.1 (DNS rebinding) still sends `Host: evil.example`. Both the raw
 * `Host` and, with GATEWAY_TRUST_PROXY, the forwarded one (`req.hostname`) must be allowed: such a
 * page may also set `X-Forwarded-Host` (to it, the gateway is its own origin). `/api/health`
 * stays open to any Host (orchestrators probe it by address).
 */
export function hostCheck(config: SecurityConfig): RequestHandler {
  const allowed = new Set((config.allowedHosts ?? SECURITY_DEFAULTS.allowedHosts).map(bare));
  return (req, _res, next) => {
    if (req.path === '/api/health') {
      next();
      return;
    }
    const raw = req.get('host');
    const names = [raw === undefined ? '' : hostNameOf(raw), bare(req.hostname)];
    const refused = names.find((host) => !allowed.has(host));
    if (refused === undefined) {
      next();
      return;
    }
    next(
      new AppError(
        'FORBIDDEN',
        `This gateway does not answer to Host ${refused === '' ? '(none)' : refused}; an operator adds it to GATEWAY_ALLOWED_HOSTS`,
        { host: refused === '' ? null : refused },
      ),
    );
  };
}

/** Whether `origin` (an `Origin` header) is the gateway's own or one of `GATEWAY_CORS_ORIGINS`. */
function originAllowed(req: Request, origin: string, listed: Set<string>): boolean {
  if (listed.has(origin)) return true;
  try {
    // Same host and port as the request's; behind a reverse proxy, `req.host` is the forwarded one
    // when GATEWAY_TRUST_PROXY trusts it.
    return new URL(origin).host === req.host.toLowerCase();
  } catch {
    return false; // `null` (a sandboxed frame, a file) or garbage
  }
}

/**
 * CORS with an allowlist. An allowed origin gets the CORS headers (and a 204 to its preflight); a
 * preflight from any other origin is refused with 403; other requests get no CORS headers, so the
 * browser keeps their answers from the page.
 */
export function cors(config: SecurityConfig): RequestHandler {
  const allowed = new Set(config.corsOrigins);
  return (req: Request, res: Response, next: NextFunction) => {
    const origin = req.get('origin');
    if (origin === undefined) {
      next();
      return;
    }
    const isAllowed = allowed.has(origin);
    res.vary('Origin');
    if (isAllowed) res.set('Access-Control-Allow-Origin', origin);
    if (req.method !== 'OPTIONS') {
      next();
      return;
    }
    if (!isAllowed) {
      next(new AppError('FORBIDDEN', 'Origin not allowed', { origin }));
      return;
    }
    res
      .set('Access-Control-Allow-Methods', 'GET, POST, PUT, PATCH, DELETE, OPTIONS')
      .set(
        'Access-Control-Allow-Headers',
        `Authorization, Content-Type, X-API-Key, ${REQUEST_HEADER}`,
      )
      .set('Access-Control-Max-Age', '600')
      .status(204)
      .end();
  };
}

/**
 * Cross-site request forgery: a state-changing request must be one a page on another site cannot
 * send without the gateway's consent (a CORS preflight): a JSON body or the `X-Ginkgo-Request`
 * header; and its `Origin`, when a browser sends one, must be the gateway's own or allow-listed
 * (`Sec-Fetch-Site: cross-site` likewise). A key does not exempt it: a browser may hold one.
 */
export function csrfCheck(config: SecurityConfig): RequestHandler {
  const listed = new Set(config.corsOrigins);
  return (req, _res, next) => {
    if (!STATE_CHANGING.has(req.method)) {
      next();
      return;
    }
    const type = (req.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase();
    const marked = (req.get(REQUEST_HEADER) ?? '') !== '';
    if (type !== 'application/json' && !marked) {
      next(
        new AppError(
          'FORBIDDEN',
          `A ${req.method} needs Content-Type: application/json or an ${REQUEST_HEADER} header (what a form on another site cannot send)`,
          { reason: 'csrf' },
        ),
      );
      return;
    }
    const origin = req.get('origin');
    const crossSite = req.get('sec-fetch-site') === 'cross-site';
    const allowed =
      origin === undefined
        ? !crossSite
        : crossSite
          ? listed.has(origin)
          : originAllowed(req, origin, listed);
    if (!allowed) {
      next(
        new AppError(
          'FORBIDDEN',
          `Origin ${origin ?? '(a cross-site page)'} may not change anything here; an operator adds it to GATEWAY_CORS_ORIGINS`,
          { reason: 'csrf', origin: origin ?? null },
        ),
      );
      return;
    }
    next();
  };
}
