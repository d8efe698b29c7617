export { freePort } from './free-port.ts';
export { isProcessRunning } from './is-process-running.ts';
export { appEntry, ManagedProcess, REPO_ROOT, tsEntry } from './managed-process.ts';
export type { ManagedProcessOptions, ProcessExit } from './managed-process.ts';
export { MemoryTransport } from './memory-transport.ts';
export type { LogEntry } from './memory-transport.ts';
export { RedisServer, RedisServerStartError } from './redis-server.ts';
export type { RedisServerOptions } from './redis-server.ts';
export { waitFor } from './wait-for.ts';
export { WebhookReceiver } from './webhook-receiver.ts';
export type { ReceivedRequest, ReceiverAnswer } from './webhook-receiver.ts';
export type { WaitOptions } from './wait-for.ts';
export {
  FAST,
  FRESH_START_MS,
  StackFixture,
  logEntries,
  metricsPortOf,
  seedBook,
  tick,
} from './stack-fixture.ts';
export type { StackFixtureOptions } from './stack-fixture.ts';
export {
  bundledApps,
  CLI_ENTRIES,
  cliBundlePath,
  cliEntry,
  ensureBundles,
  staleBundle,
} from './bundles.ts';
export { parsePrometheus } from './prometheus-text.ts';
export { fleetNodeInfo, fleetPortfolioState, seedFleet } from './seed-fleet.ts';
export type { SeedFleetOptions } from './seed-fleet.ts';
export { RedisCluster } from './redis-cluster.ts';
export type { RedisClusterOptions } from './redis-cluster.ts';
export { SentinelGroup } from './sentinel-group.ts';
export { Alertmanager } from './alertmanager.ts';
export type { AlertmanagerAlert, AlertmanagerGroup } from './alertmanager.ts';
export { SmtpRelay } from './smtp-relay.ts';
export type { ReceivedMail, SmtpRelayOptions } from './smtp-relay.ts';
export { TlsCertificates } from './tls-certificates.ts';
export type { TlsAuthClients } from './tls-certificates.ts';
export { TestUsers } from './test-users.ts';
