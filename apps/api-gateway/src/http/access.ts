import type { Request, RequestHandler, Response } from 'express';
import type { SecurityConfig } from '../config.ts';
import { requireKey } from './security.ts';

/**
 * What a key may do. Each scope includes the ones before it, except `metrics`, which only scrapes
 * `/metrics`: `read` ⊂ `operate` (drain, undrain, migrate, pause, resume, halt) ⊂ `admin` (catalog,
 * audit). A `read` key may also scrape.
 */
export const SCOPES = ['metrics', 'read', 'operate', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

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

const PRINCIPAL = 'principal';

/** The principal `require` stored for this request; throws when no `require` ran (a routing bug). */
export function principalOf(res: Response): Principal {
  const principal = res.locals[PRINCIPAL] as Principal | undefined;
  if (principal === undefined) throw new Error('principalOf: no access check ran for this route');
  return principal;
}

/**
 * Interim implementation over the one-kind keys of `GATEWAY_API_KEYS`: every key is `admin`, and the
 * principal is named by the client address. Replaced by scoped, named keys.
 */
export function createAccess(security: SecurityConfig): Access {
  const checks = {
    read: requireKey(security, 'read'),
    control: requireKey(security, 'control'),
  };
  return {
    require(scope) {
      const check = scope === 'read' || scope === 'metrics' ? checks.read : checks.control;
      return (req: Request, res: Response, next) => {
        check(req, res, (err?: unknown) => {
          if (err === undefined) {
            const address = req.ip ?? 'unknown';
            res.locals[PRINCIPAL] = {
              name: 'anonymous',
              scope: 'admin',
              address,
            } satisfies Principal;
          }
          next(err);
        });
      };
    },
  };
}
