import net from 'node:net';

/** Whether nothing listens on `port` (any interface): a listen probe, closed at once. */
export function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, () => probe.close(() => resolve(true)));
  });
}

/** The first free port from `from` on, trying `tries` ports; undefined when all are taken. */
export async function firstFreePort(from: number, tries = 20): Promise<number | undefined> {
  for (let port = from; port < from + tries && port <= 65_535; port++) {
    if (await isPortFree(port)) return port;
  }
  return undefined;
}

/** The port a "Gateway listening" log line names, in JSON (`"port":8000`) or pretty (`port=8000`). */
export function listeningPort(line: string): number | undefined {
  const match = /"?port"?[=:](\d+)/.exec(line);
  return match === null ? undefined : Number(match[1]);
}
