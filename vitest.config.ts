import { defineConfig } from 'vitest/config';
import { LongestFirstSequencer } from './scripts/test-order.ts';

/**
 * One config for the whole repository, two projects:
 * - `unit`: `*.test.ts`, no Redis, no sockets; fast.
 * - `integration`: `*.int.test.ts` (real redis-server from @ginkgo-live/testing) and `e2e/`
 *   (real app entry points as processes).
 * `npm test` runs both; a package's `test` / `test:int` scripts run one project over its folder.
 */
export default defineConfig({
  test: {
    // Two files at a time even on two cores (vitest's default there is one): most of an
    // end-to-end test is waiting for heartbeats, TTLs and restarts, not computing.
    maxWorkers: 2,
    // The longest files first (scripts/test-order.ts), so both workers finish together.
    sequence: { sequencer: LongestFirstSequencer },
    projects: [
      {
        test: {
          name: 'unit',
          root: import.meta.dirname,
          include: [
            '{packages,apps}/*/src/**/*.test.ts',
            'scripts/**/*.test.ts',
            'chaos/**/*.test.ts',
            'bench/**/*.test.ts',
          ],
          exclude: ['**/node_modules/**', '**/*.int.test.ts'],
          restoreMocks: true,
        },
      },
      {
        test: {
          name: 'integration',
          root: import.meta.dirname,
          include: [
            '{packages,apps}/*/src/**/*.int.test.ts',
            '{packages,apps}/*/e2e/**/*.test.ts',
            'e2e/**/*.test.ts',
          ],
          exclude: ['**/node_modules/**'],
          // The apps' production bundles, rebuilt where older than their sources.
          globalSetup: ['./scripts/test-setup.ts'],
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
    ],
  },
});
