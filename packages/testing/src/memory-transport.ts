import Transport from 'winston-transport';

/** One captured log entry. */
export interface LogEntry {
  level: string;
  message: string;
  [field: string]: unknown;
}

/** A winston transport that keeps every entry in memory, for tests that assert on logs. */
export class MemoryTransport extends Transport {
  readonly entries: LogEntry[] = [];

  override log(info: LogEntry, next: () => void): void {
    this.entries.push({ ...info });
    next();
  }

  /** Entries whose message equals `message`. */
  withMessage(message: string): LogEntry[] {
    return this.entries.filter((entry) => entry.message === message);
  }
}
