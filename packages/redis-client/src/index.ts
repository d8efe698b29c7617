export { aclFile, aclUsers } from './acl.ts';
export type { AclOptions, AclUser, AclUserName } from './acl.ts';
export { backoffDelayMs } from './backoff.ts';
export type { BackoffOptions } from './backoff.ts';
export {
  REDIS_DEFAULTS,
  describeRedisConfig,
  isRedisConfigured,
  loadRedisConfig,
} from './config.ts';
export type { RedisConfig, RedisTlsMode } from './config.ts';
export type { PemFile, RedisTlsFiles } from './tls.ts';
export { ConnectionMonitor } from './connection-monitor.ts';
export type { ConnectionState, ConnectionStatus } from './connection-monitor.ts';
export { pingRedis } from './health.ts';
export { LuaScript } from './lua-script.ts';
export type { PingResult } from './health.ts';
export { buildClusterOptions, buildRedisOptions, reconnectOnRedisError } from './options.ts';
export type { ConnectionOptions, ConnectionProfile } from './options.ts';
export { RedisConnections } from './redis-connections.ts';
export {
  byMaster,
  bySlot,
  connectionForKey,
  delBySlot,
  groupBySlot,
  keySlot,
  mgetBySlot,
  perKeyBySlot,
} from './slots.ts';
export type { RedisLike, SlotGroup } from './slots.ts';
export type { RedisConnectionsOptions } from './redis-connections.ts';
export type { Redis } from 'ioredis';
