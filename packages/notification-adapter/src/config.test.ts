import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadNotificationConfig } from './config.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'ginkgo-notify-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, content: string): string => {
  const p = path.join(dir, name);
  writeFileSync(p, content);
  return p;
};

const EMAIL = {
  NOTIFY_EMAIL_TO: 'oncall@desk.example',
  NOTIFY_EMAIL_FROM: 'ginkgo@desk.example',
  NOTIFY_SMTP_HOST: 'smtp.desk.example',
};

/** The one issue an environment gets, as `VARIABLE: message`. */
function issue(env: Record<string, string>): string {
  const result = loadNotificationConfig(env);
  if (result.ok) throw new Error('expected the config to be refused');
  expect(result.issues).toHaveLength(1);
  return `${result.issues[0]?.variable ?? ''}: ${result.issues[0]?.message ?? ''}`;
}

describe('the e-mail settings', () => {
  it('are off by default', () => {
    const result = loadNotificationConfig({});
    expect(result.ok && result.value.email).toBeUndefined();
  });

  it('default to STARTTLS, required, on port 587; 465 with implicit TLS; 25 without', () => {
    const port = (tls: string | undefined) => {
      const result = loadNotificationConfig({
        ...EMAIL,
        ...(tls === undefined ? {} : { NOTIFY_SMTP_TLS: tls }),
      });
      return result.ok ? [result.value.email?.tls, result.value.email?.port] : result.issues;
    };
    expect(port(undefined)).toEqual(['starttls', 587]);
    expect(port('implicit')).toEqual(['implicit', 465]);
    expect(port('off')).toEqual(['off', 25]);
  });

  it('take recipients separated by commas, a login and a password file (its one line)', () => {
    const result = loadNotificationConfig({
      ...EMAIL,
      NOTIFY_EMAIL_TO: 'a@desk.example, b@desk.example',
      NOTIFY_SMTP_PORT: '2525',
      NOTIFY_SMTP_USERNAME: 'ginkgo',
      NOTIFY_SMTP_PASSWORD_FILE: file('pw', 'from-a-file\n'),
    });
    expect(result.ok && result.value.email).toMatchObject({
      to: ['a@desk.example', 'b@desk.example'],
      port: 2525,
      auth: { username: 'ginkgo', password: 'from-a-file' },
    });
  });

  it.each([
    [
      { NOTIFY_SMTP_HOST: 'smtp.desk.example' },
      'NOTIFY_SMTP_HOST: is set but NOTIFY_EMAIL_TO is not',
    ],
    [{ ...EMAIL, NOTIFY_EMAIL_TO: 'oncall' }, 'NOTIFY_EMAIL_TO: must be addresses'],
    [{ ...EMAIL, NOTIFY_EMAIL_FROM: '' }, 'NOTIFY_EMAIL_FROM: must be set with NOTIFY_EMAIL_TO'],
    [{ ...EMAIL, NOTIFY_SMTP_HOST: '' }, 'NOTIFY_SMTP_HOST: must name the SMTP relay'],
    [{ ...EMAIL, NOTIFY_SMTP_PORT: '70000' }, 'NOTIFY_SMTP_PORT: must be a port'],
    [
      { ...EMAIL, NOTIFY_SMTP_TLS: 'yes' },
      'NOTIFY_SMTP_TLS: must be one of starttls, implicit, off',
    ],
    [{ ...EMAIL, NOTIFY_SMTP_USERNAME: 'ginkgo' }, 'NOTIFY_SMTP_PASSWORD: must be set'],
    [{ ...EMAIL, NOTIFY_SMTP_PASSWORD: 'pw' }, 'NOTIFY_SMTP_USERNAME: must be set with a password'],
    [
      { ...EMAIL, NOTIFY_SMTP_USERNAME: 'u', NOTIFY_SMTP_PASSWORD: 'pw', NOTIFY_SMTP_TLS: 'off' },
      'NOTIFY_SMTP_TLS: is off, which would send the SMTP password in clear',
    ],
    [
      {
        ...EMAIL,
        NOTIFY_SMTP_USERNAME: 'u',
        NOTIFY_SMTP_PASSWORD: 'pw',
        NOTIFY_SMTP_PASSWORD_FILE: '/x',
      },
      'NOTIFY_SMTP_PASSWORD_FILE: is set, and so is NOTIFY_SMTP_PASSWORD',
    ],
    [
      { ...EMAIL, NOTIFY_SMTP_USERNAME: 'u', NOTIFY_SMTP_PASSWORD_FILE: '/nonexistent/pw' },
      'NOTIFY_SMTP_PASSWORD_FILE: cannot read /nonexistent/pw (ENOENT)',
    ],
    [{ ...EMAIL, NOTIFY_SMTP_CA_FILE: '/nonexistent/ca.pem' }, 'NOTIFY_SMTP_CA_FILE: cannot read'],
    [
      { ...EMAIL, NOTIFY_SMTP_TLS: 'off', NOTIFY_SMTP_CA_FILE: '/nonexistent/ca.pem' },
      'NOTIFY_SMTP_CA_FILE: is set but NOTIFY_SMTP_TLS is off',
    ],
  ])('refuse %o, naming the setting', (env, expected) => {
    expect(issue(env)).toContain(expected);
  });

  it('never show the password in an issue', () => {
    const text = issue({
      ...EMAIL,
      NOTIFY_SMTP_USERNAME: 'u',
      NOTIFY_SMTP_PASSWORD: 'hunter2-secret',
      NOTIFY_SMTP_TLS: 'off',
    });
    expect(text).not.toContain('hunter2-secret');
  });
});

describe('the routes file', () => {
  it('is read and checked against the sinks this configuration has', () => {
    const routes = file(
      'routes.yaml',
      'routes:\n  - match: { level: critical }\n    sinks: [webhook]\ndefault: [log]\n',
    );
    const result = loadNotificationConfig({
      NOTIFY_WEBHOOK_URL: 'https://hooks.example/x',
      NOTIFY_ROUTES_FILE: routes,
    });
    expect(result.ok && result.value.routing).toMatchObject({
      file: routes,
      routes: [{ match: { level: ['critical'] }, sinks: ['webhook'], line: 2 }],
      defaultSinks: ['log'],
    });
  });

  it('names the file and the line of a route that cannot work', () => {
    const routes = file(
      'bad-routes.yaml',
      'default: [log]\nroutes:\n  - match: { level: critical }\n    sinks: [email]\n',
    );
    expect(issue({ NOTIFY_ROUTES_FILE: routes })).toBe(
      `NOTIFY_ROUTES_FILE: ${routes} line 4: \`sinks\`: no sink "email" is configured here (configured: log)`,
    );
  });

  it('names a file it cannot read', () => {
    expect(issue({ NOTIFY_ROUTES_FILE: '/nonexistent/routes.yaml' })).toBe(
      'NOTIFY_ROUTES_FILE: cannot read /nonexistent/routes.yaml (ENOENT)',
    );
  });
});
