import type { Redis } from 'ioredis';
import { LuaScript } from '@ginkgo-live/redis-client';
import type { NotificationLevel, StateKeys } from '@ginkgo-live/state-keys';
import type { NotificationConfig } from './config.ts';
import type { Raise, Resolve } from './notification-step.ts';

/**
 * Raise: marks the condition active and claims the cooldown of (kind, subject, level).
 * KEYS[1] cooldown key   KEYS[2] active hash of the condition group
 * ARGV[1] cooldown ms    ARGV[2] field `kind|level`   ARGV[3] now (ms)
 * Returns 1 when this caller should send (cooldown was free), 0 when it is suppressed.
 */
const RAISE = new LuaScript(`
redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3])
if tonumber(ARGV[1]) <= 0 then return 1 end
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 1 end
return 0
`);

/**
 * Resolve: the caller that deletes the active hash sends the one resolved notice; its cooldowns go
 * too, so a new occurrence is told at once.
 * KEYS[1] active hash   KEYS[2..] cooldown keys of the group
 * Returns the fields (`kind|level`) that were active, or an empty list when nothing was.
 */
const RESOLVE = new LuaScript(`
local fields = redis.call('HKEYS', KEYS[1])
if #fields == 0 then return {} end
redis.call('DEL', unpack(KEYS))
return fields
`);

const SEVERITY: Record<NotificationLevel, number> = { info: 0, warning: 1, error: 2, critical: 3 };

/** How long a level stays quiet after it was sent (`NOTIFY_*_COOLDOWN_MS`; error as critical). */
export function cooldownMs(
  level: NotificationLevel,
  config: Pick<NotificationConfig, 'infoCooldownMs' | 'warningCooldownMs' | 'criticalCooldownMs'>,
): number {
  return level === 'warning'
    ? config.warningCooldownMs
    : level === 'info'
      ? config.infoCooldownMs
      : config.criticalCooldownMs;
}

/**
 * The (kind, level) a resolved notice speaks for: the most severe that was firing (the first of
 * equals, in the order Redis returned them); undefined when none was.
 */
export function mostSevere(
  fields: readonly string[],
): { kind: string; level: NotificationLevel } | undefined {
  const [top] = fields
    .map((f) => f.split('|') as [string, NotificationLevel])
    .sort((a, b) => SEVERITY[b[1]] - SEVERITY[a[1]]);
  return top === undefined ? undefined : { kind: top[0], level: top[1] };
}

/**
 * The dedupe every process shares through Redis: which occurrences are new (a free cooldown of
 * kind, subject and level) and which process tells that a condition cleared (the one that deletes
 * its active hash). The keys are those of every release before the catalogue (state-keys
 * `notificationCooldown`/`notificationActive`, fields `kind|level`), so a fleet upgraded in the
 * middle of an incident neither tells it again nor loses its resolved notice.
 */
export class SharedDedupe {
  constructor(
    private readonly redis: Redis,
    private readonly keys: StateKeys,
    private readonly config: Pick<
      NotificationConfig,
      'infoCooldownMs' | 'warningCooldownMs' | 'criticalCooldownMs'
    >,
  ) {}

  /** Marks the condition active; true when this caller is the one to send the notification. */
  async claim(raise: Omit<Raise, 'notification'>): Promise<boolean> {
    const sent = await RAISE.run(
      this.redis,
      [
        this.keys.notificationCooldown(raise.kind, raise.subject, raise.level),
        this.keys.notificationActive(raise.group, raise.subject),
      ],
      [cooldownMs(raise.level, this.config), `${raise.kind}|${raise.level}`, Date.now()],
    );
    return sent === 1;
  }

  /**
   * Clears the condition and the cooldowns of its kinds; the `kind|level` fields that were active
   * when this caller cleared it (it sends the resolved notice), or none when another process did or
   * nothing fired.
   */
  async clear(resolve: Pick<Resolve, 'group' | 'subject' | 'kinds'>): Promise<string[]> {
    return (await RESOLVE.run(
      this.redis,
      [
        this.keys.notificationActive(resolve.group, resolve.subject),
        ...resolve.kinds.map((k) =>
          this.keys.notificationCooldown(k.kind, resolve.subject, k.level),
        ),
      ],
      [],
    )) as string[];
  }
}
