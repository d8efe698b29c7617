export { freePort } from './free-port.ts';
export { ManagedProcess, REPO_ROOT, tsEntry } from './managed-process.ts';
export type { ManagedProcessOptions, ProcessExit } from './managed-process.ts';
export { MemoryTransport } from './memory-transport.ts';
export type { LogEntry } from './memory-transport.ts';
export { RedisServer, RedisServerStartError } from './redis-server.ts';
export type { RedisServerOptions } from './redis-server.ts';
export { waitFor } from './wait-for.ts';
export type { WaitOptions } from './wait-for.ts';
