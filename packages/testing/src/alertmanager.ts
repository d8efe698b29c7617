import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './free-port.ts';
import { ManagedProcess } from './managed-process.ts';
import { waitFor } from './wait-for.ts';

/** An alert as Alertmanager's v2 API lists it. */
export interface AlertmanagerAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  status: { state: 'active' | 'suppressed' | 'unprocessed' };
}

/** A group as `GET /api/v2/alerts/groups` lists it. */
export interface AlertmanagerGroup {
  labels: Record<string, string>;
  alerts: AlertmanagerAlert[];
}

/**
 * A real Alertmanager (Debian's `prometheus-alertmanager`) on 127.0.0.1 and a free port, alone
 * (no cluster peers), with its data in a temporary directory and the configuration `config` (YAML)
 * written there. `url` is its base address.
 */
export class Alertmanager {
  private constructor(
    private readonly process: ManagedProcess,
    private readonly dir: string,
    readonly url: string,
  ) {}

  static async start(config: string, binary = 'prometheus-alertmanager'): Promise<Alertmanager> {
    const dir = mkdtempSync(path.join(tmpdir(), 'ginkgo-alertmanager-'));
    const file = path.join(dir, 'alertmanager.yml');
    writeFileSync(file, config);
    const port = await freePort();
    const process = ManagedProcess.start({
      name: 'alertmanager',
      command: binary,
      args: [
        `--config.file=${file}`,
        `--storage.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        // Alone: no gossip port, no peers to wait for.
        '--cluster.listen-address=',
      ],
    });
    const url = `http://127.0.0.1:${port}`;
    const am = new Alertmanager(process, dir, url);
    try {
      await waitFor(
        async () => {
          if (process.exit !== undefined)
            throw new Error(`alertmanager exited: ${process.output.slice(-2_000)}`);
          const ready = await fetch(`${url}/-/ready`).catch(() => undefined);
          return ready?.status === 200;
        },
        { timeoutMs: 15_000, description: 'alertmanager ready' },
      );
    } catch (err) {
      await am.stop();
      throw err;
    }
    return am;
  }

  /** The alerts it holds now that are not resolved (`GET /api/v2/alerts`). */
  async alerts(): Promise<AlertmanagerAlert[]> {
    const response = await fetch(`${this.url}/api/v2/alerts`);
    if (!response.ok) throw new Error(`alertmanager: HTTP ${response.status}`);
    return (await response.json()) as AlertmanagerAlert[];
  }

  /** Its alert groups, as its routes' `group_by` made them. */
  async groups(): Promise<AlertmanagerGroup[]> {
    const response = await fetch(`${this.url}/api/v2/alerts/groups`);
    if (!response.ok) throw new Error(`alertmanager: HTTP ${response.status}`);
    return (await response.json()) as AlertmanagerGroup[];
  }

  get output(): string {
    return this.process.output;
  }

  async stop(): Promise<void> {
    await this.process.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
