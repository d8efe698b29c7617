import { describe, expect, it } from 'vitest';
import { formatConfigIssues } from '@ginkgo-live/runtime';
import { describeKeys, loadConfig } from './config.ts';

const SECRET_A = 'a-secret-0123456789';
const SECRET_B = 'b-secret-0123456789';
const SECRET_C = 'c-secret-0123456789';

const noFile = (path: string): string => {
  throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
};

function issues(env: Record<string, string>, readFile = noFile): string {
  const result = loadConfig(env, readFile);
  if (result.ok) throw new Error('expected the config to be refused');
  return formatConfigIssues(result.issues);
}

function config(env: Record<string, string>, readFile = noFile) {
  const result = loadConfig(env, readFile);
  if (!result.ok) throw new Error(formatConfigIssues(result.issues));
  return result.value;
}

describe('gateway config: keys', () => {
  it('reads named, scoped keys from GATEWAY_API_KEYS and GATEWAY_API_KEYS_FILE', () => {
    const file = `# scrapers\nprom:metrics:${SECRET_C}\n\n  desk:operate:${SECRET_A}:with:colons  \n`;
    const { security } = config(
      {
        GATEWAY_API_KEYS: `grafana:read:${SECRET_A}, ops:admin:${SECRET_B}`,
        GATEWAY_API_KEYS_FILE: '/keys',
      },
      (path) => (path === '/keys' ? file : noFile(path)),
    );
    expect(security.apiKeys).toEqual([
      { name: 'grafana', scope: 'read', secret: SECRET_A },
      { name: 'ops', scope: 'admin', secret: SECRET_B },
      { name: 'prom', scope: 'metrics', secret: SECRET_C },
      { name: 'desk', scope: 'operate', secret: `${SECRET_A}:with:colons` },
    ]);
    expect(describeKeys(security)).toEqual({
      metrics: ['prom'],
      read: ['grafana'],
      operate: ['desk'],
      admin: ['ops'],
    });
  });

  it('a bare key of the old format: one line saying the new format, never the secret', () => {
    const text = issues({ GATEWAY_API_KEYS: SECRET_A });
    expect(text).toBe(
      'GATEWAY_API_KEYS: entry 1 is not name:scope:secret (scope one of metrics, read, operate, admin; e.g. grafana:read:<secret of 16+ characters>); keys are named and scoped now (value not shown: it may be a secret)',
    );
    expect(text).not.toContain(SECRET_A);
  });

  it('refuses a short secret, an unknown scope, a bad or repeated name, an unreadable file — naming the entry, not the secret', () => {
    const text = issues({
      GATEWAY_API_KEYS: `a:read:short,b:write:${SECRET_A},bad name:read:${SECRET_A},c:read:${SECRET_A},c:admin:${SECRET_B}`,
      GATEWAY_API_KEYS_FILE: '/missing',
    });
    expect(text.split('\n')).toEqual([
      'GATEWAY_API_KEYS: entry 1 (a): the secret must be at least 16 characters (value not shown)',
      'GATEWAY_API_KEYS: entry 2 (b): scope must be one of metrics, read, operate, admin',
      'GATEWAY_API_KEYS: entry 3: the name must be 1 to 64 of A-Z a-z 0-9 _ . - (format name:scope:secret (scope one of metrics, read, operate, admin; e.g. grafana:read:<secret of 16+ characters>))',
      'GATEWAY_API_KEYS: entry 5: the name c is used by another key',
      'GATEWAY_API_KEYS_FILE: cannot read /missing (ENOENT)',
    ]);
    expect(text).not.toContain(SECRET_A);
    expect(text).not.toContain('short');
  });

  it('two keys with one secret are refused (the gateway could not tell their holders apart), naming the keys, not the secret', () => {
    const text = issues(
      {
        GATEWAY_API_KEYS: `grafana:read:${SECRET_A},ops:admin:${SECRET_B}`,
        GATEWAY_API_KEYS_FILE: '/k',
      },
      () => `root:admin:${SECRET_A}\nprom:metrics:${SECRET_C}\nscraper:metrics:${SECRET_C}\n`,
    );
    expect(text.split('\n')).toEqual([
      'GATEWAY_API_KEYS_FILE: the keys grafana and root have the same secret (value not shown); give each its own',
      'GATEWAY_API_KEYS_FILE: the keys prom and scraper have the same secret (value not shown); give each its own',
    ]);
    expect(text).not.toContain(SECRET_A);
    expect(text).not.toContain(SECRET_C);
    expect(issues({ GATEWAY_API_KEYS: `a:read:${SECRET_A},b:operate:${SECRET_A}` })).toBe(
      'GATEWAY_API_KEYS: the keys a and b have the same secret (value not shown); give each its own',
    );
  });

  it('a name in both the variable and the file is refused', () => {
    expect(
      issues(
        { GATEWAY_API_KEYS: `ops:admin:${SECRET_A}`, GATEWAY_API_KEYS_FILE: '/k' },
        () => `ops:read:${SECRET_B}\n`,
      ),
    ).toBe('GATEWAY_API_KEYS_FILE: the name ops is also in GATEWAY_API_KEYS');
  });
});

describe('gateway config: safe defaults', () => {
  it('binds 127.0.0.1 by default and answers to loopback names only; keys none is said as such', () => {
    const { host, security } = config({});
    expect(host).toBe('127.0.0.1');
    expect(security.allowedHosts).toEqual(['localhost', '127.0.0.1', '::1']);
    expect(security.trustProxy).toBe(false);
    expect(security.auth).toBe('on');
    expect(describeKeys(security)).toBe('none (this machine only)');
  });

  it('a non-loopback host without keys is refused with one line naming GATEWAY_API_KEYS and GATEWAY_AUTH=off', () => {
    expect(issues({ GATEWAY_HOST: '0.0.0.0' })).toBe(
      'GATEWAY_HOST: 0.0.0.0 is reachable from other machines and no API keys are set; set GATEWAY_API_KEYS (or GATEWAY_API_KEYS_FILE), or GATEWAY_AUTH=off to serve anyone who reaches it',
    );
    expect(config({ GATEWAY_HOST: '0.0.0.0', GATEWAY_AUTH: 'off' }).security.auth).toBe('off');
    expect(config({ GATEWAY_HOST: '0.0.0.0', GATEWAY_API_KEYS: `a:read:${SECRET_A}` }).host).toBe(
      '0.0.0.0',
    );
    expect(config({ GATEWAY_HOST: '::1' }).host).toBe('::1');
    expect(issues({ GATEWAY_AUTH: 'off', GATEWAY_API_KEYS: `a:read:${SECRET_A}` })).toBe(
      'GATEWAY_AUTH: is off but API keys are set; unset one of GATEWAY_AUTH and GATEWAY_API_KEYS(_FILE)',
    );
  });

  it('the bound host is allowed too; GATEWAY_ALLOWED_HOSTS replaces the list', () => {
    expect(
      config({ GATEWAY_HOST: '10.0.0.5', GATEWAY_API_KEYS: `a:read:${SECRET_A}` }).security
        .allowedHosts,
    ).toEqual(['localhost', '127.0.0.1', '::1', '10.0.0.5']);
    expect(
      config({ GATEWAY_ALLOWED_HOSTS: 'ops.example.com, [::1]' }).security.allowedHosts,
    ).toEqual(['ops.example.com', '::1']);
    expect(issues({ GATEWAY_ALLOWED_HOSTS: 'ops.example.com:8000' })).toBe(
      'GATEWAY_ALLOWED_HOSTS: must be comma-separated host names without port, like ops.example.com,10.0.0.5',
    );
  });

  it('event stream caps: per client address, per key name and in all', () => {
    expect(config({}).security).toMatchObject({
      sseMaxPerClient: 8,
      sseMaxPerKey: 8,
      sseMaxTotal: 100,
    });
    expect(config({ GATEWAY_SSE_MAX_PER_KEY: '3' }).security.sseMaxPerKey).toBe(3);
    expect(issues({ GATEWAY_SSE_MAX_PER_KEY: '0' })).toMatch(/^GATEWAY_SSE_MAX_PER_KEY: /);
  });

  it('GATEWAY_TRUST_PROXY: off, a hop count or addresses; true is refused', () => {
    expect(config({ GATEWAY_TRUST_PROXY: 'off' }).security.trustProxy).toBe(false);
    expect(config({ GATEWAY_TRUST_PROXY: '1' }).security.trustProxy).toBe(1);
    expect(
      config({ GATEWAY_TRUST_PROXY: 'loopback, 10.0.0.0/8, fd00::1' }).security.trustProxy,
    ).toEqual(['loopback', '10.0.0.0/8', 'fd00::1']);
    expect(issues({ GATEWAY_TRUST_PROXY: 'true' })).toBe(
      "GATEWAY_TRUST_PROXY: must be off, a hop count (1: one reverse proxy in front), or the proxies' addresses/subnets (10.0.0.1, 10.0.0.0/8, loopback); not understood: true",
    );
  });
});
