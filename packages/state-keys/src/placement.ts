/**
 * The digest of a node's placement fields (`capacity` and `portfolio_ids`, in their order), as
 * `nodeInfo.placement` carries it: 16 lowercase hex digits, two 32-bit multiplicative hashes of the
 * same text. It changes whenever either field does, so that a reader that remembers a node's
 * placement can skip decoding an info whose digest it already holds. Not a security boundary: a
 * node writes its own info, and a reader that decodes one checks the digest against its fields.
 */
export function placementDigest(capacity: number, portfolioIds: readonly string[]): string {
  // Ids are [A-Za-z0-9_.-]: the separators cannot occur in them.
  const text = `${capacity}:${portfolioIds.join(',')}`;
  let a = 0x811c9dc5;
  let b = 0x9e3779b9;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  a = Math.imul(a ^ (a >>> 16), 0x85ebca6b);
  a = Math.imul(a ^ (a >>> 13), 0xc2b2ae35);
  a ^= a >>> 16;
  b = Math.imul(b ^ (b >>> 16), 0x7feb352d);
  b = Math.imul(b ^ (b >>> 15), 0x846ca68b);
  b ^= b >>> 16;
  return (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0');
}
