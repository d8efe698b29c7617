import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

interface Metafile {
  outputs: Record<
    string,
    {
      inputs: Record<string, unknown>;
      imports: { path: string; kind: string; external?: boolean }[];
    }
  >;
}

const app = fileURLToPath(new URL('..', import.meta.url));
// A plain script (the build's own), loaded as it is run.
const script = new URL('../../../scripts/build-app.mjs', import.meta.url).href;

/** The npm packages whose code is in `outputs`, by name. */
function packagesIn(metafile: Metafile, outputs: Iterable<string>): Set<string> {
  const names = new Set<string>();
  for (const output of outputs)
    for (const input of Object.keys(metafile.outputs[output]?.inputs ?? {})) {
      const match = /node_modules\/((?:@[^/]+\/)?[^/.][^/]*)\//.exec(
        input.slice(input.lastIndexOf('node_modules/')),
      );
      if (match?.[1] !== undefined) names.add(match[1]);
    }
  return names;
}

/** The outputs Node loads with `start` (its static imports, transitively), or every one reached. */
function closure(metafile: Metafile, start: string, dynamic: boolean): Set<string> {
  const seen = new Set<string>([start]);
  const todo = [start];
  for (let output = todo.pop(); output !== undefined; output = todo.pop())
    for (const { path: to, kind, external } of metafile.outputs[output]?.imports ?? []) {
      if (external === true || seen.has(to)) continue;
      if (kind !== 'import-statement' && !(dynamic && kind === 'dynamic-import')) continue;
      seen.add(to);
      todo.push(to);
    }
  return seen;
}

describe('the scheduler’s production bundle', () => {
  it('loads neither BullMQ nor nodemailer at start: only import() reaches them', async () => {
    const { buildApp } = (await import(script)) as {
      buildApp: (app: string, outdir: string) => Promise<{ metafile: Metafile }>;
    };
    const out = mkdtempSync(path.join(tmpdir(), 'scheduler-bundle-'));
    try {
      const { metafile } = await buildApp(app, out);
      const main = Object.keys(metafile.outputs).find((o) => o.endsWith(`${path.sep}main.js`));
      if (main === undefined) throw new Error('no main.js among the outputs');
      const atStart = packagesIn(metafile, closure(metafile, main, false));
      const reachable = packagesIn(metafile, closure(metafile, main, true));
      expect(['bullmq', 'nodemailer'].filter((name) => atStart.has(name))).toEqual([]);
      // Still bundled, for the first notification and the first e-mail.
      expect(['bullmq', 'nodemailer'].filter((name) => reachable.has(name))).toEqual([
        'bullmq',
        'nodemailer',
      ]);
      // What it does load at start: the client, the logger, the metrics and the schemas.
      expect(['ioredis', 'winston', 'prom-client', 'zod'].filter((n) => atStart.has(n))).toEqual([
        'ioredis',
        'winston',
        'prom-client',
        'zod',
      ]);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 120_000);
});
