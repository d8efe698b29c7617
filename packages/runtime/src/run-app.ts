import { CONFIG_EXIT_CODE, formatConfigIssues, redactSecrets } from './env.ts';
import type { ConfigResult, Env } from './env.ts';
import { createLogger, type Logger, type LoggingConfig } from './logger.ts';
import { MetricsRegistry } from './metrics-registry.ts';
import { loadMetricsServerConfig, MetricsServer } from './metrics-server.ts';
import { handleShutdownSignals } from './shutdown.ts';
import { StartupError } from './startup-error.ts';

/** What an app's wiring gets from the bootstrap. */
export interface AppContext<C> {
  config: C;
  logger: Logger;
  /** The app's registry: declare metrics on it; `/metrics` serves it. */
  metrics: MetricsRegistry;
}

/** The services of an app, wired but not started. */
export interface AppServices {
  /** `/health` of the metrics server: whether the app is healthy (200, else 503) and its body. */
  health?: () => { healthy: boolean; body: Record<string, unknown> };
  /**
   * Starts the work, after the metrics server listens. Throw a `StartupError` for a reason the
   * operator fixes (one line, its exit code); anything else is logged as a failed start (exit 1).
   */
  start: () => Promise<void>;
  /**
   * Stops the services (the bootstrap stops the metrics server after). Resolving to `false` means
   * not cleanly: exit code 1.
   */
  stop: (signal: NodeJS.Signals) => Promise<unknown>;
}

export interface AppSpec<C extends { logging: LoggingConfig }> {
  /** The app's name: tags every log line, starts every line on stderr. */
  app: string;
  loadConfig: (env: Env) => ConfigResult<C>;
  /** Prefix of the process's default metrics: `ginkgo_node_`, ... */
  metricsPrefix: string;
  /** Which instance this process is (`NODE_ID`, `SCHEDULER_ID`): tags every log line. */
  instanceId?: (config: C) => string | undefined;
  /** What the start log shows of the config (secrets are redacted after); default all of it. */
  describeConfig?: (config: C) => unknown;
  /**
   * Serve `/metrics` and `/health` on their own port (the gateway serves them on its API port):
   * `METRICS_PORT` (default `defaultPort`), `METRICS_HOST` (default 127.0.0.1), `METRICS_TOKEN`,
   * read here for every app.
   */
  metricsServer?: { defaultPort: number };
  /**
   * When a stop has not finished this long after the signal, the process exits with 1 anyway: a
   * stop that hangs must not keep a process half-alive. Default 30 s.
   */
  hardExitAfterMs?: (config: C) => number;
  /** The composition of the app: builds its services from the config; starts nothing yet. */
  create: (context: AppContext<C>) => AppServices | Promise<AppServices>;
}

const DEFAULT_HARD_EXIT_MS = 30_000;

/**
 * The one way an app process starts: the config checked (every bad setting on its own line, exit
 * 2), the logger, the start log with the config (secrets redacted), the shutdown signals with a
 * hard-exit backstop, the metrics server, and any error that escapes — one line, never a stack
 * trace on the operator's terminal. Each app's `main.ts` is only its wiring (`create`).
 */
export async function runApp<C extends { logging: LoggingConfig }>(
  spec: AppSpec<C>,
): Promise<void> {
  const loaded = spec.loadConfig(process.env);
  const metricsLoaded =
    spec.metricsServer === undefined
      ? undefined
      : loadMetricsServerConfig(process.env, spec.metricsServer.defaultPort);
  if (!loaded.ok || metricsLoaded?.ok === false) {
    const issues = [
      ...(loaded.ok ? [] : loaded.issues),
      ...(metricsLoaded?.ok === false ? metricsLoaded.issues : []),
    ];
    process.stderr.write(`${spec.app}: invalid configuration\n${formatConfigIssues(issues)}\n`);
    process.exit(CONFIG_EXIT_CODE);
  }
  const config = loaded.value;
  const metricsConfig = metricsLoaded?.value;
  const instanceId = spec.instanceId?.(config);
  const logger = createLogger({
    app: spec.app,
    ...(instanceId === undefined ? {} : { nodeId: instanceId }),
    level: config.logging.level,
    format: config.logging.format,
  });
  const fail = (err: unknown): never => exitOnError(spec.app, logger, err);
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
  const described = spec.describeConfig === undefined ? config : spec.describeConfig(config);
  logger.info('Configuration', {
    config: redactSecrets(
      metricsConfig === undefined
        ? described
        : { ...(described as object), metricsServer: metricsConfig },
    ),
  });

  try {
    const metrics = new MetricsRegistry({ prefix: spec.metricsPrefix });
    const services = await spec.create({ config, logger, metrics });
    const metricsServer =
      metricsConfig === undefined
        ? undefined
        : new MetricsServer({
            ...metricsConfig,
            registry: metrics,
            health: services.health ?? (() => ({ healthy: true, body: { status: 'running' } })),
            onError: (err) => logger.error('Metrics server error; the app goes on', { err }),
          });
    handleShutdownSignals({
      logger,
      hardExitAfterMs: spec.hardExitAfterMs?.(config) ?? DEFAULT_HARD_EXIT_MS,
      stop: async (signal) => {
        const clean = await services.stop(signal);
        await metricsServer?.stop();
        return clean === false ? 1 : 0;
      },
    });
    if (metricsServer !== undefined) {
      const port = await metricsServer.start();
      logger.info('Metrics listening', {
        host: metricsConfig?.host,
        port,
        path: '/metrics',
        token: metricsConfig?.token === undefined ? 'none' : 'required',
      });
    }
    await services.start();
  } catch (err) {
    fail(err);
  }
}

/**
 * The end of a process that cannot go on: a `StartupError` is the operator's one line (and its exit
 * code); anything else is logged with its stack for the developer and summed up in one line.
 */
function exitOnError(app: string, logger: Logger, err: unknown): never {
  if (err instanceof StartupError) {
    process.stderr.write(`${app}: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  logger.error('Stopped by an unexpected error', { err });
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`${app}: stopped by an unexpected error: ${message}\n`);
  process.exit(1);
}
