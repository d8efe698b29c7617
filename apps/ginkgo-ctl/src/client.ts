/** Why a request got no usable answer; `exitCode` is what the command exits with. */
export class CtlError extends Error {
  override readonly name = 'CtlError';

  constructor(
    message: string,
    /** 2: the caller must change something (key, scope, address); 1: the fleet or gateway is not well. */
    readonly exitCode: 1 | 2,
  ) {
    super(message);
  }
}

export interface ClientOptions {
  /** The gateway's base address, e.g. `http://127.0.0.1:8000`. */
  url: string;
  apiKey: string | undefined;
  timeoutMs: number;
}

/** The gateway's HTTP API, with the key on every request. */
export class GatewayClient {
  constructor(private readonly options: ClientOptions) {}

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  delete<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const { url, apiKey, timeoutMs } = this.options;
    let response: Response;
    try {
      response = await fetch(`${url.replace(/\/+$/, '')}${path}`, {
        method,
        headers: {
          accept: 'application/json',
          ...(apiKey === undefined ? {} : { 'x-api-key': apiKey }),
          // Every change says it is one (the gateway refuses a change without it from a browser).
          ...(method === 'GET' ? {} : { 'x-ginkgo-request': 'ginkgo-ctl' }),
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const code = cause?.code ?? cause?.message;
      const timedOut = (err as Error).name === 'TimeoutError';
      throw new CtlError(
        timedOut
          ? `the gateway at ${url} did not answer within ${timeoutMs} ms`
          : `cannot reach the gateway at ${url} (${code ?? (err as Error).message}): is it running? set GINKGO_URL or --url`,
        1,
      );
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (response.ok) return parsed as T;
    // The gateway's errors: {error, code, message, details}; the message says what happened.
    const answer = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as {
      message?: unknown;
      error?: unknown;
    };
    const said =
      typeof answer.message === 'string'
        ? answer.message
        : typeof answer.error === 'string'
          ? answer.error
          : `HTTP ${response.status}`;
    if (response.status === 401)
      throw new CtlError(
        `the gateway wants an API key (${said}): set GINKGO_API_KEY or GINKGO_API_KEY_FILE`,
        2,
      );
    if (response.status === 403)
      throw new CtlError(`this key may not do that (${said}): use a key of the right scope`, 2);
    if (response.status === 400 || response.status === 404)
      throw new CtlError(`${method} ${path}: ${said}`, 2);
    // A change refused as it stands (halting a halted fleet, resuming what is not paused).
    if (response.status === 409) throw new CtlError(said, 1);
    if (response.status === 503)
      throw new CtlError(`the gateway cannot read the fleet (${said}): Redis is unreachable`, 1);
    throw new CtlError(`${method} ${path}: ${said}`, 1);
  }
}
