import { readFileSync } from 'node:fs';
import { decodePayload, type PortfolioSpec } from '@ginkgo-live/state-keys';

/**
 * Reads a catalog file: a JSON array of portfolio specs (`_v` may be left out). Returns the specs
 * or every problem, naming the entry.
 */
export function readCatalogFile(
  path: string,
): { ok: true; specs: PortfolioSpec[] } | { ok: false; problems: string[] } {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    return { ok: false, problems: [`${path}: ${(err as Error).message}`] };
  }
  if (!Array.isArray(json))
    return { ok: false, problems: [`${path}: must be a JSON array of portfolio specs`] };
  const specs: PortfolioSpec[] = [];
  const problems: string[] = [];
  json.forEach((entry: unknown, index) => {
    const decoded = decodePayload(
      'portfolioSpec',
      `${path}[${index}]`,
      JSON.stringify({ _v: 1, ...(entry as object) }),
    );
    if (decoded.ok) specs.push(decoded.value);
    else problems.push(`${path}[${index}]: ${decoded.error.problem}`);
  });
  return problems.length > 0 ? { ok: false, problems } : { ok: true, specs };
}
