import type { NotificationLevel } from '@ginkgo-live/state-keys';

const ALIASES: Record<string, NotificationLevel> = {
  info: 'info',
  warn: 'warning',
  warning: 'warning',
  error: 'error',
  critical: 'critical',
  crit: 'critical',
  alert: 'critical',
};

/** Level names as callers write them (`WARN`, `Warning`, `ALERT`…) to the four levels; undefined if unknown. */
export function normalizeLevel(level: string): NotificationLevel | undefined {
  return ALIASES[level.trim().toLowerCase()];
}
