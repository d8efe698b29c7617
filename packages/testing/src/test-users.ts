/**
 * Made-up, distinct passwords for a test's Redis ACL users (so a user logging in with another's
 * password fails), and the ways a test hands them out: to the harness, or as an app's environment.
 */
export class TestUsers {
  readonly passwords: Record<string, string>;

  constructor(names: readonly string[]) {
    this.passwords = Object.fromEntries(
      names.map((name) => [name, `pw-${name}-${Math.random().toString(36).slice(2)}`]),
    );
  }

  /** `{ username, password }`, for the harness's own clients. */
  user(name: string): { username: string; password: string } {
    const password = this.passwords[name];
    if (password === undefined) throw new Error(`TestUsers: no user "${name}"`);
    return { username: name, password };
  }

  /** The environment that makes an app log in as `name`. */
  env(name: string): { REDIS_USERNAME: string; REDIS_PASSWORD: string } {
    const { username, password } = this.user(name);
    return { REDIS_USERNAME: username, REDIS_PASSWORD: password };
  }
}
