/**
 * A small app on `runApp` for `run-app.int.test.ts`: `FIXTURE_MODE` picks how it starts and stops,
 * so the test can produce every outcome of the bootstrap in a real process.
 */
import { z } from 'zod';
import { combineConfig, envEnum, envString, parseEnv } from './env.ts';
import { loadLoggingConfig } from './logger.ts';
import { runApp } from './run-app.ts';
import { StartupError } from './startup-error.ts';

const MODES = ['ok', 'refuse', 'throw', 'crash-later', 'unclean-stop', 'hung-stop'] as const;
const schema = z.object({
  FIXTURE_MODE: envEnum(MODES, 'ok'),
  FIXTURE_SECRET_TOKEN: envString(),
});

await runApp({
  app: 'fixture',
  loadConfig: (env) => {
    const parts = combineConfig({ own: parseEnv(schema, env), logging: loadLoggingConfig(env) });
    if (!parts.ok) return parts;
    const { own, logging } = parts.value;
    return {
      ok: true,
      value: {
        mode: own.FIXTURE_MODE,
        token: own.FIXTURE_SECRET_TOKEN,
        logging,
      },
    };
  },
  metricsPrefix: 'fixture_',
  metricsServer: { defaultPort: 0 },
  hardExitAfterMs: () => 1_000,
  create: ({ config, logger, metrics }) => {
    let started = 0;
    metrics.gauge({ name: 'fixture_started', help: 'Starts', value: () => started });
    return {
      health: () => ({ healthy: started === 1, body: { mode: config.mode } }),
      start: () => {
        if (config.mode === 'refuse')
          throw new StartupError('FIXTURE_MODE=refuse; set it to ok', 3);
        if (config.mode === 'throw') throw new Error('boom at start');
        if (config.mode === 'crash-later') {
          setTimeout(() => {
            throw new Error('boom later');
          }, 50);
        }
        started += 1;
        logger.info('Fixture running');
        return Promise.resolve();
      },
      stop: async () => {
        if (config.mode === 'hung-stop') await new Promise(() => undefined);
        logger.info('Fixture stopped');
        return config.mode !== 'unclean-stop';
      },
    };
  },
});
