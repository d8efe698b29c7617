import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type Router } from 'express';

/**
 * Where the operations page's files are: `public/` of the app when run from source
 * (`src/http/page.ts`), `dist/public/` next to the bundle (`dist/main.js`, copied by the build).
 */
export function findPageDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.resolve(here, '../../public'), path.resolve(here, 'public')];
  const found = candidates.find((dir) => existsSync(path.join(dir, 'index.html')));
  if (found === undefined)
    throw new Error(`The operations page is missing: looked in ${candidates.join(', ')}`);
  return found;
}

/** `/` (the page) and `/ui/*` (its script and styles): static files, no build step, no CDN. */
export function pageRoutes(dir = findPageDir()): Router {
  const router = express.Router();
  const noCache = { 'Cache-Control': 'no-cache' };
  router.get('/', (_req, res) => {
    res.set(noCache).sendFile(path.join(dir, 'index.html'));
  });
  router.use(
    '/ui',
    express.static(dir, { index: false, fallthrough: true, setHeaders: (res) => res.set(noCache) }),
  );
  return router;
}
