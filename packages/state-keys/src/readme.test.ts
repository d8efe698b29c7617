import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createStateKeys } from './keys.ts';
import { PAYLOAD_SCHEMAS } from './schemas.ts';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('the README key table', () => {
  it('has a row for every key builder', () => {
    const builders = Object.keys(createStateKeys()).filter((name) => name !== 'prefix');
    for (const builder of builders) expect(readme).toContain(`\`${builder}\``);
  });

  it('describes every payload schema', () => {
    for (const name of Object.keys(PAYLOAD_SCHEMAS)) {
      expect(readme).toMatch(new RegExp(`^\\|\\s*\`${name}\`\\s*\\|`, 'm'));
    }
  });
});
