import { readFileSync } from 'node:fs';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';

/** `off`: plain TCP. `on`: TLS with certificate verification. `insecure`: TLS, no verification. */
export type RedisTlsMode = 'off' | 'on' | 'insecure';

/** A PEM file read at startup: its path (logged) and its content (never logged). */
export interface PemFile {
  file: string;
  pem: string;
}

/**
 * The certificate files and name every TLS connection uses — to Redis and, with Sentinel, to the
 * sentinels (one set: a deployment's Redis servers and sentinels share one CA).
 */
export interface RedisTlsFiles {
  /** `REDIS_TLS_CA_FILE`: trust these CAs instead of Node's bundled ones. */
  ca: PemFile | undefined;
  /** `REDIS_TLS_CERT_FILE`: the client certificate, for a server with `tls-auth-clients yes`. */
  cert: PemFile | undefined;
  /** `REDIS_TLS_KEY_FILE`: the client certificate's private key. */
  key: PemFile | undefined;
  /** `REDIS_TLS_SERVERNAME`: the name to verify (and send as SNI) instead of the host dialled. */
  servername: string | undefined;
}

export const NO_TLS_FILES: RedisTlsFiles = {
  ca: undefined,
  cert: undefined,
  key: undefined,
  servername: undefined,
};

/** Reads a PEM file named by `variable`; the problem as text when it cannot be used. */
export function readPemFile(file: string, kind: string): PemFile | string {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    return `cannot read ${file} (${code}): name a readable PEM file with ${kind}`;
  }
  if (!pem.includes('-----BEGIN '))
    return `${file} is not a PEM file (no -----BEGIN line): it must hold ${kind}`;
  return { file, pem };
}

/** Node's TLS options for one mode; undefined when TLS is off. */
export function tlsOptions(
  mode: RedisTlsMode,
  files: RedisTlsFiles,
): TlsConnectionOptions | undefined {
  if (mode === 'off') return undefined;
  return {
    rejectUnauthorized: mode === 'on',
    // Without a servername Node verifies the host dialled — with Sentinel, the address the
    // sentinels gave for the master, which a fixed name would contradict after a failover.
    ...(files.servername === undefined ? {} : { servername: files.servername }),
    ...(files.ca === undefined ? {} : { ca: files.ca.pem }),
    ...(files.cert === undefined ? {} : { cert: files.cert.pem }),
    ...(files.key === undefined ? {} : { key: files.key.pem }),
  };
}

/**
 * What a startup log should say is in force: `off`, `insecure (certificate not verified)`, or
 * `on, verify: ca <file>` / `on, verify: system CAs`, with the client certificate and the name
 * verified when set.
 */
export function describeTls(mode: RedisTlsMode, files: RedisTlsFiles): string {
  if (mode === 'off') return 'off';
  const parts =
    mode === 'insecure'
      ? ['insecure (certificate not verified)']
      : ['on', `verify: ${files.ca === undefined ? 'system CAs' : `ca ${files.ca.file}`}`];
  if (mode === 'on' && files.servername !== undefined) parts.push(`name ${files.servername}`);
  if (files.cert !== undefined) parts.push(`client cert ${files.cert.file}`);
  return parts.join(', ');
}
