/** CPU and memory of this process, measured, not guessed. */
export interface ProcessStats {
  /** CPU time used since the previous sample over the wall time elapsed, in % of one core. */
  cpuPercent: number;
  rssBytes: number;
  heapUsedBytes: number;
}

/** Samples this process's CPU (as a delta between calls) and memory. */
export class ProcessStatsSampler {
  private lastCpu = process.cpuUsage();
  private lastAt = performance.now();
  private lastPercent = 0;

  sample(): ProcessStats {
    const now = performance.now();
    const elapsedMs = now - this.lastAt;
    if (elapsedMs >= 100) {
      const cpu = process.cpuUsage(this.lastCpu);
      this.lastPercent = ((cpu.user + cpu.system) / 1_000 / elapsedMs) * 100;
      this.lastCpu = process.cpuUsage();
      this.lastAt = now;
    }
    const memory = process.memoryUsage();
    return {
      cpuPercent: Math.round(this.lastPercent * 10) / 10,
      rssBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
    };
  }
}
