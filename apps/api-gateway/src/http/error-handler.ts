import type { ErrorRequestHandler, Request, Response } from 'express';
import type { Logger } from '@ginkgo-live/runtime';
import { auditTarget, type ControlQueue, type Requester } from '../control-queue.ts';
import { RedisUnavailableError } from '../redis-unavailable.ts';
import { principalOf } from './access.ts';
import { controlMarkOf } from './api-router.ts';
import { errorBody, toAppError, type AppError } from './errors.ts';

/**
 * Who a refused request came from, when the gateway knows: the principal the access check stored,
 * or for a scope refusal the key it names (`details.key`). An unidentified client (no key, a wrong
 * one) is not audited: anyone could fill the capped trail with noise and push real entries out.
 */
function requesterOf(req: Request, res: Response, err: AppError): Requester | undefined {
  try {
    const { name, address } = principalOf(res);
    return { name, address };
  } catch {
    const key = err.details['key'];
    return err.code === 'FORBIDDEN' && typeof key === 'string'
      ? { name: key, address: req.ip ?? 'unknown' }
      : undefined;
  }
}

/** One `forbidden` audit entry per key and action per this long; the ones between are counted. */
const FORBIDDEN_AUDIT_WINDOW_MS = 60_000;

/**
 * Keeps a key refused for its scope from flushing the capped audit trail with `forbidden` entries:
 * the first refusal of a key+action in a minute is written, the rest only counted, and the count
 * goes into the `reason` of the next entry written. In-process (one map per gateway), bounded by
 * the configured keys × the control actions.
 */
class ForbiddenAuditThrottle {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  /** The reason to write, or undefined when this refusal is only counted. */
  admit(key: string, action: string, reason: string): string | undefined {
    const now = Date.now();
    const id = `${key}\u0000${action}`;
    const seen = this.last.get(id);
    if (seen !== undefined && now - seen.at < FORBIDDEN_AUDIT_WINDOW_MS) {
      seen.suppressed++;
      return undefined;
    }
    this.last.set(id, { at: now, suppressed: 0 });
    if (seen === undefined || seen.suppressed === 0) return reason;
    return `${reason} (and ${seen.suppressed} more refusals of ${key} for ${action} since the last entry, not recorded one by one)`;
  }
}

/**
 * The last middleware: every error becomes the one error shape (`toAppError`, the one mapping),
 * with no internal text for the client; and a control request refused here — 403 for its scope,
 * 400 for its input — leaves a `forbidden` / `invalid` audit entry (`forbidden`: at most one per
 * key and action a minute, see `ForbiddenAuditThrottle`). An audit that cannot be written is
 * logged; the refusal stands.
 */
export function errorHandler(deps: { logger: Logger; control: ControlQueue }): ErrorRequestHandler {
  const throttle = new ForbiddenAuditThrottle();
  return async (err: unknown, req, res, _next) => {
    const appError = toAppError(err);
    if (appError.code === 'INTERNAL_ERROR')
      deps.logger.error('Request failed', { path: req.path, err });
    else if (appError.code === 'REDIS_UNAVAILABLE')
      deps.logger.warn('Request failed: Redis unavailable', {
        path: req.path,
        reason: err instanceof RedisUnavailableError ? err.reason : undefined,
      });
    const mark = controlMarkOf(res);
    const outcome =
      appError.code === 'FORBIDDEN'
        ? 'forbidden'
        : appError.code === 'INVALID_PARAMETER'
          ? 'invalid'
          : undefined;
    const requester =
      mark === undefined || outcome === undefined ? undefined : requesterOf(req, res, appError);
    const reason =
      mark === undefined || requester === undefined
        ? undefined
        : outcome === 'forbidden'
          ? throttle.admit(requester.name, mark.action, appError.message)
          : appError.message;
    if (
      mark !== undefined &&
      outcome !== undefined &&
      requester !== undefined &&
      reason !== undefined
    ) {
      try {
        await deps.control.refused(
          { action: mark.action, target: auditTarget(mark.target()), reason },
          outcome,
          requester,
        );
      } catch (auditErr) {
        deps.logger.warn('Could not audit a refused control request', {
          path: req.path,
          outcome,
          actor: requester.name,
          err: auditErr,
        });
      }
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    res.status(appError.status).json(errorBody(appError));
  };
}
