/**
 * A strict reader of the Prometheus text format (0.0.4; values as Go's ParseFloat reads them, so
 * `NaN` in any case): every line is a comment (`# HELP`,
 * `# TYPE` with a known type) or a sample `name{labels} value`; every sample's family has a TYPE.
 */
export function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type =
      /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      types.set(type[1] ?? '', type[2] ?? '');
      continue;
    }
    if (/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$/.test(line)) continue;
    const sample =
      /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|[Nn][Aa][Nn]|[+-][Ii]nf)$/.exec(
        line,
      );
    if (!sample) throw new Error(`Not Prometheus text: ${line}`);
    const name = sample[1] ?? '';
    const family = [...types.keys()].find((f) => name === f || name.startsWith(`${f}_`));
    if (family === undefined) throw new Error(`Sample without TYPE: ${line}`);
    if (types.get(family) === 'counter' && !family.endsWith('_total')) {
      throw new Error(`Counter not named *_total: ${family}`);
    }
    samples.set(`${name}${sample[2] ?? ''}`, Number(sample[3]));
  }
  return samples;
}
