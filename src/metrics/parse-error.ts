/** A source (a /proc file, an RPC reply, kamcmd output) did not have the shape we rely on. */
export class MetricsParseError extends Error {
  override readonly name = 'MetricsParseError';
  constructor(
    readonly source: string,
    detail: string,
  ) {
    super(`${source}: ${detail}`);
  }
}

/** A non-negative safe integer written in base 10 (the kernel's counters), or undefined. */
export function parseCounter(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d{1,16}$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}
