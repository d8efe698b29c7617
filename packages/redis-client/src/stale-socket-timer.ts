import type { Redis } from 'ioredis';

/**
 * Works around an ioredis 5.11 defect: the `socketTimeout` timer armed for a command on a socket
 * that then dies is not cleared on close, so it fires on the *next* socket and destroys a healthy,
 * freshly reconnected connection up to one command timeout later (seen: every reconnect while a
 * command was in flight cost a second outage). Clearing the timer whenever the connection closes
 * restores the intended behaviour; the test "keeps the new connection after a reconnect when a
 * command was in flight on the old one" fails without it.
 */
export function clearSocketTimerOnClose(client: Redis): void {
  const internals = client as unknown as { socketTimeoutTimer?: NodeJS.Timeout };
  client.on('close', () => {
    clearTimeout(internals.socketTimeoutTimer);
    internals.socketTimeoutTimer = undefined;
  });
}
