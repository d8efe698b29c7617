import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** How a TLS Redis treats client certificates (`tls-auth-clients`). */
export type TlsAuthClients = 'no' | 'optional' | 'yes';

/**
 * A throwaway certificate authority made with `openssl` in a temporary directory: its CA, a server
 * certificate for 127.0.0.1 and localhost (also usable as a client certificate, as Redis uses it
 * for replication and Sentinel links), and a client certificate. EC P-256 keys: quick to make.
 */
export class TlsCertificates {
  private constructor(readonly dir: string) {}

  /** Makes a fresh CA and certificates; `name` goes into the CA's subject (tells two CAs apart). */
  static make(name = 'ginkgo-test-ca'): TlsCertificates {
    const dir = mkdtempSync(path.join(tmpdir(), 'ginkgo-tls-'));
    const certs = new TlsCertificates(dir);
    try {
      certs.openssl(
        ['req', '-x509', ...certs.newKey('ca.key'), '-out', 'ca.pem', '-days', '2'],
        `/CN=${name}`,
      );
      certs.issue('server', '/CN=localhost', [
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
        'extendedKeyUsage=serverAuth,clientAuth',
      ]);
      certs.issue('client', '/CN=ginkgo-test-client', ['extendedKeyUsage=clientAuth']);
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    return certs;
  }

  get caFile(): string {
    return path.join(this.dir, 'ca.pem');
  }
  get serverCertFile(): string {
    return path.join(this.dir, 'server.pem');
  }
  get serverKeyFile(): string {
    return path.join(this.dir, 'server.key');
  }
  get clientCertFile(): string {
    return path.join(this.dir, 'client.pem');
  }
  get clientKeyFile(): string {
    return path.join(this.dir, 'client.key');
  }

  /** Node TLS options that trust this CA (for the harness's own clients). */
  get clientTls(): { ca: string; cert: string; key: string } {
    return {
      ca: readFileSync(this.caFile, 'utf8'),
      cert: readFileSync(this.clientCertFile, 'utf8'),
      key: readFileSync(this.clientKeyFile, 'utf8'),
    };
  }

  /** The `redis-server`/`redis-sentinel` arguments of a TLS-only server on `port`. */
  serverArgs(port: number, authClients: TlsAuthClients): string[] {
    return [
      '--port',
      '0',
      '--tls-port',
      String(port),
      '--tls-cert-file',
      this.serverCertFile,
      '--tls-key-file',
      this.serverKeyFile,
      '--tls-ca-cert-file',
      this.caFile,
      '--tls-auth-clients',
      authClients,
      // Replicas dial their master, and sentinels every server, over TLS too.
      '--tls-replication',
      'yes',
    ];
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private newKey(keyFile: string): string[] {
    return [
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyFile,
    ];
  }

  private issue(name: string, subject: string, extensions: string[]): void {
    writeFileSync(path.join(this.dir, `${name}.ext`), `${extensions.join('\n')}\n`);
    this.openssl(['req', ...this.newKey(`${name}.key`), '-out', `${name}.csr`], subject);
    this.openssl([
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    ]);
  }

  private openssl(args: string[], subject?: string): void {
    execFileSync('openssl', [...args, ...(subject === undefined ? [] : ['-subj', subject])], {
      cwd: this.dir,
      stdio: 'pipe',
    });
  }
}
