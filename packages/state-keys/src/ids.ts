/**
 * Node and portfolio ids: 1–64 characters of letters, digits, `_`, `.` and `-`. No `:` (the key
 * separator), no `{}` (Redis Cluster hash tags), no spaces, so every key parses back unambiguously.
 */
export const ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/** True when `id` may be used as a node or portfolio id. */
export function isValidId(id: string): boolean {
  return ID_PATTERN.test(id);
}

/** Throws a RangeError naming `what` when `id` is not a valid id: building a key from one is a bug. */
export function assertValidId(what: string, id: string): string {
  if (!isValidId(id)) {
    throw new RangeError(`Invalid ${what} "${id}": expected 1-64 characters of [A-Za-z0-9_.-]`);
  }
  return id;
}
