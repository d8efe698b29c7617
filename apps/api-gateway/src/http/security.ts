import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { ipKeyGenerator, rateLimit } from 'express-rate-limit';
import type { SecurityConfig } from '../config.ts';
import { AppError, errorBody } from './errors.ts';

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

/** The key a request presents: `X-API-Key`, or `Authorization: Bearer <key>`. */
function presentedKey(req: Request): string | undefined {
  const header = req.get('x-api-key');
  if (header !== undefined && header !== '') return header;
  const auth = req.get('authorization');
  const match = auth === undefined ? null : /^Bearer\s+(.+)$/i.exec(auth);
  return match?.[1];
}

/**
 * API-key check. With no keys configured everything is open; with keys, control endpoints always
 * need one, reads too unless `publicReads`. A missing or wrong key is a 401 that says nothing
 * about which keys exist. Keys are compared by SHA-256 digest in constant time.
 */
export function requireKey(config: SecurityConfig, kind: 'read' | 'control'): RequestHandler {
  const digests = config.apiKeys.map(digest);
  return (req, _res, next) => {
    if (digests.length === 0 || (kind === 'read' && config.publicReads)) {
      next();
      return;
    }
    const key = presentedKey(req);
    const given = key === undefined ? undefined : digest(key);
    const ok = given !== undefined && digests.some((d) => timingSafeEqual(d, given));
    next(ok ? undefined : new AppError('UNAUTHORIZED', 'Missing or invalid API key'));
  };
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
      .set('Access-Control-Allow-Methods', 'GET, POST, DELETE, OPTIONS')
      .set('Access-Control-Allow-Headers', 'Authorization, Content-Type, X-API-Key')
      .set('Access-Control-Max-Age', '600')
      .status(204)
      .end();
  };
}

/**
 * Rate limit per client (its API key when it gives one, else its address), per minute, with
 * `X-RateLimit-Limit`, `-Remaining` and `-Reset` headers; over the limit: 429 in the error shape.
 * In-process counts: behind several gateways each counts its own share.
 */
export function rateLimiter(config: SecurityConfig): RequestHandler {
  return rateLimit({
    windowMs: 60_000,
    limit: config.rateLimitPerMinute,
    legacyHeaders: true,
    standardHeaders: false,
    keyGenerator: (req) => {
      const key = presentedKey(req);
      return key === undefined
        ? `ip:${ipKeyGenerator(req.ip ?? 'unknown')}`
        : `key:${digest(key).toString('hex')}`;
    },
    handler: (_req, res) => {
      res.status(429).json(errorBody(new AppError('RATE_LIMITED', 'Too many requests; slow down')));
    },
  });
}
