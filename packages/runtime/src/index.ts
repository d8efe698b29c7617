export {
  CONFIG_EXIT_CODE,
  ConfigError,
  combineConfig,
  envBool,
  envDurationMs,
  envEnum,
  envInt,
  envString,
  formatConfigIssues,
  parseEnv,
  readSecretFile,
  redactSecrets,
  unwrapConfig,
} from './env.ts';
export type { ConfigIssue, ConfigResult, Env } from './env.ts';
export { LOG_LEVELS, createLogger, loadLoggingConfig } from './logger.ts';
export type { LogFormat, LogLevel, Logger, LoggerOptions, LoggingConfig } from './logger.ts';
export { loadMetricsServerConfig, MetricsServer } from './metrics-server.ts';
export type { MetricsServerConfig, MetricsServerOptions } from './metrics-server.ts';
export { handleShutdownSignals } from './shutdown.ts';
export type { ShutdownOptions } from './shutdown.ts';
export { PeriodicLoop } from './periodic-loop.ts';
export type { PeriodicLoopOptions, PeriodicLoopStats } from './periodic-loop.ts';
export { MetricsRegistry } from './metrics-registry.ts';
export type {
  HistogramMetric,
  HistogramSample,
  LabelledMetric,
  MetricSample,
  ValueMetric,
} from './metrics-registry.ts';
export { runApp } from './run-app.ts';
export type { AppContext, AppServices, AppSpec } from './run-app.ts';
export { StartupError, ensureWritableDir, listen, listenError } from './startup-error.ts';
export type { ListenTarget } from './startup-error.ts';
