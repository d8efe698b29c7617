import { defineConfig } from 'vitest/config';

/**
 * `pnpm test:containers`: docker/containers.test.ts alone — podman builds docker/Dockerfile's images
 * and runs them. Slow and root-only, so it lives outside the root vitest.config.ts (which
 * `npm test` and CI run): no project there includes docker/.
 */
export default defineConfig({
  test: {
    root: `${import.meta.dirname}/..`,
    include: ['docker/containers.test.ts'],
    // One stack of containers at a time; the tests in the file follow one another on it.
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 1_800_000,
  },
});
