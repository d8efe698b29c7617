import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The docs cite only what the repository has. A clone holds its READMEs and `docs/*.md` and
 * nothing else of the design: every path they name must exist, every function they name beside a
 * file must be in it, every test `docs/requirements.md` quotes must be in the file it names, and no
 * document or source may send a reader to a design note that is not in the repository.
 */

const root = path.resolve(import.meta.dirname, '..');

/** Folders that are build output, tools or local state: never part of a clone. */
const NOT_IN_A_CLONE = new Set([
  '.git',
  'node_modules',
  'dist',
  '.turbo',
  '.tools',
  '.stack',
  '.chaos',
  'coverage',
  'test-artifacts',
]);

function walk(dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
    if (NOT_IN_A_CLONE.has(entry.name)) continue;
    const rel = dir === '' ? entry.name : `${dir}/${entry.name}`;
    if (entry.isDirectory()) {
      out.push(`${rel}/`);
      walk(rel, out);
    } else out.push(rel);
  }
  return out;
}

const entries = walk('');
const entrySet = new Set(entries);
const topLevel = new Set(readdirSync(root).filter((name) => !NOT_IN_A_CLONE.has(name)));
const read = (rel: string): string => readFileSync(path.join(root, rel), 'utf8');
/** Every README of the repository and every page under `docs/`. */
const docFiles = entries.filter(
  (e) => /(?:^|\/)README\.md$/.test(e) || /^docs\/[^/]+\.md$/.test(e),
);

/** Files a reader makes from a template and git ignores (`docker/.env`): named, never committed. */
const localOnly = read('.gitignore')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line !== '' && !line.startsWith('#') && !line.endsWith('/'))
  .map(
    (pattern) =>
      new RegExp(`^${pattern.replace(/[.+?^$()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`),
  );
const isLocalOnly = (rel: string): boolean =>
  localOnly.some((pattern) => pattern.test(path.posix.basename(rel)));

/** A glob (`*`, `**`, `{a,b}`, `<placeholder>`) as a regular expression over repository paths. */
function globToRegExp(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob.charAt(i);
    if (glob.startsWith('**/', i)) {
      out += '(?:.*/)?';
      i += 2;
    } else if (c === '*') out += '[^/]*';
    else if (c === '<') {
      i = glob.indexOf('>', i);
      out += '[^/]+';
    } else if (c === '{') {
      const end = glob.indexOf('}', i);
      out += `(?:${glob
        .slice(i + 1, end)
        .split(',')
        .map((part) => part.replace(/[.+?^$()|[\]\\]/g, '\\$&'))
        .join('|')})`;
      i = end;
    } else out += c.replace(/[.+?^$()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${out}/?$`);
}

/** Whether a repository path (file, folder, or glob matching at least one) exists. */
function exists(rel: string): boolean {
  if (/[*<{]/.test(rel)) {
    const pattern = globToRegExp(rel);
    return entries.some((e) => pattern.test(e));
  }
  return entrySet.has(rel) || entrySet.has(`${rel}/`) || entrySet.has(rel.replace(/\/$/, ''));
}

/** Trailing characters that end a sentence or a line reference, not the path. */
const tidy = (raw: string): string =>
  raw
    .replace(/[`'"),.;:]+$/, '')
    .replace(/:\d+(?:-\d+)?$/, '')
    .replace(/#.*$/, '');

/** `rel` as a document means it: from the repository's root, else from the document's folder. */
function resolveCited(doc: string, rel: string): string | undefined {
  const dir = path.posix.dirname(doc);
  const candidates = dir === '.' ? [rel] : [rel, path.posix.join(dir, rel)];
  return candidates.find(exists);
}

/**
 * Every repository path a document names: bare mentions starting with a top-level entry of the
 * repository (or, in a nested README, of its own folder), and link targets (from the document).
 */
function citedPaths(doc: string): string[] {
  const text = read(doc);
  const dir = path.posix.dirname(doc);
  const near = new Set(
    dir === '.'
      ? []
      : entries
          .filter((e) => e.startsWith(`${dir}/`))
          .map((e) => e.slice(dir.length + 1).split('/')[0]),
  );
  const found = new Set<string>();
  const bare = /(?<=^|[\s`(["'|])([A-Za-z0-9_.-]+(?:\/[^\s`'"|)\]]*)?)/gm;
  for (const match of text.matchAll(bare)) {
    const word = match[1] ?? '';
    const first = word.split('/')[0] ?? '';
    if (!topLevel.has(first) && !near.has(first)) continue;
    if (!word.includes('/') && !/\.\w+$/.test(word)) continue;
    if (/\/dist\//.test(word)) continue; // build output, written by `pnpm build`
    found.add(tidy(word));
  }
  for (const match of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    const target = match[1] ?? '';
    if (/^[a-z]+:|^#/.test(target)) continue;
    found.add(path.posix.normalize(path.posix.join(dir, tidy(target))));
  }
  return [...found].filter((p) => !isLocalOnly(p));
}

describe('the documents', () => {
  it('are every README and every page under docs/', () => {
    expect(docFiles).toContain('docs/architecture.md');
    expect(docFiles).toContain('docs/requirements.md');
  });

  it.each(docFiles)('%s cites only paths the repository has', (doc) => {
    const missing = citedPaths(doc).filter((p) => resolveCited(doc, p) === undefined);
    expect(missing).toEqual([]);
  });

  it.each(docFiles)('%s names only functions that are in the file it cites', (doc) => {
    // `path/to/file.ts` (`name`, `Class.method`): each name's last part is a word of that file.
    const citation = /`([\w./-]+\.(?:ts|mjs|js))` \(((?:`[\w.]+`(?:, )?)+)\)/g;
    const missing: string[] = [];
    for (const match of read(doc).matchAll(citation)) {
      const file = resolveCited(doc, match[1] ?? '');
      if (file === undefined) continue; // reported by the path check
      const source = read(file);
      for (const name of (match[2] ?? '').matchAll(/`([\w.]+)`/g)) {
        const last = (name[1] ?? '').split('.').pop() ?? '';
        if (!new RegExp(`\\b${last}\\b`).test(source)) missing.push(`${file}: ${name[1] ?? ''}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it.each(docFiles)('%s links only to headings it has', (doc) => {
    // GitHub's anchors: the heading lowercased, punctuation dropped, each space a hyphen.
    const slug = (heading: string): string =>
      heading
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, '')
        .replace(/ /g, '-');
    const text = read(doc);
    const anchors = new Set([...text.matchAll(/^#+ (.+)$/gm)].map((m) => slug(m[1] ?? '')));
    const broken = [...text.matchAll(/\]\(#([^)]+)\)/g)]
      .map((m) => m[1] ?? '')
      .filter((anchor) => !anchors.has(anchor));
    expect(broken).toEqual([]);
  });

  it('never send a reader to a design note the repository does not have', () => {
    const notes = /\b(?:DESIGN|STYLE)\.md\b/;
    const markdown = entries.filter((e) => e.endsWith('.md'));
    const sources = entries.filter((e) => /\.(?:ts|mjs|js|ya?ml|example)$/.test(e));
    const citing = [...markdown, ...sources].filter((file) => notes.test(read(file)));
    expect(citing).toEqual([]);
  });
});

describe('docs/requirements.md', () => {
  it('quotes only tests that exist, each in the file it names', () => {
    const requirements = read('docs/requirements.md');
    // A test is cited as `path/to/x.test.ts` “its name”[, “another name”…].
    const missing: string[] = [];
    let cited = 0;
    for (const match of requirements.matchAll(/`([\w./-]+\.test\.ts)`((?:[\s,]*“[^”]+”)+)/g)) {
      const file = match[1] ?? '';
      const source = exists(file) ? read(file) : '';
      for (const name of (match[2] ?? '').matchAll(/“([^”]+)”/g)) {
        cited += 1;
        // A name may wrap over lines in the page; in the test file it is on one.
        const quoted = (name[1] ?? '').replace(/\s+/g, ' ');
        if (!source.includes(quoted)) missing.push(`${file}: ${quoted}`);
      }
    }
    expect(missing).toEqual([]);
    expect(cited).toBeGreaterThan(20);
  });

  it('explains every requirement id the code and the READMEs use', () => {
    const requirements = read('docs/requirements.md');
    const id = /\b(?:FR-\d{3}|T\d{3})\b/g;
    const users = entries.filter(
      (e) => /\.(?:ts|md)$/.test(e) && !e.startsWith('docs/') && !e.startsWith('chaos/'),
    );
    const used = new Set(users.flatMap((file) => read(file).match(id) ?? []));
    const unexplained = [...used].filter(
      (req) => !new RegExp(`^#+ .*\\b${req}\\b`, 'm').test(requirements),
    );
    expect(used.size).toBeGreaterThan(5);
    expect(unexplained).toEqual([]);
  });
});
