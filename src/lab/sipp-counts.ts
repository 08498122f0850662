/**
 * Where a sipp UAC's failed calls gave up, read from its `-trace_counts` file: the one reading of that
 * file for the failover bench and the demo. Pure: text in, counts out.
 */

/**
 * Failed calls by where they gave up. Calls that never reached the ACK failed in setup (the INVITE
 * never answered, or a final reply the scenario did not expect); established calls that then timed out
 * lost their BYE (their dialog died with the server that held it).
 */
export interface FailureSplit {
  /** Calls whose INVITE was never answered (a timeout before the ACK is sent). */
  readonly unanswered: number;
  /** Established calls that timed out after the ACK: the BYE or its 200 lost. */
  readonly byeLost: number;
  /** Calls ended by a reply the scenario did not expect (a 503, a 481), at any step. */
  readonly unexpected: number;
  /** Calls that failed before the ACK: `unanswered` plus unexpected replies to the INVITE. */
  readonly failedInSetup: number;
}

/**
 * The split from the file's header and last row (`;`-separated, one column per scenario step and
 * counter, e.g. `3_200_Timeout`, `7_ACK_Sent`, `10_200_Timeout`; the last row is cumulative).
 * Null when the file has no data row or its scenario has no ACK step.
 */
export function splitFailures(countsCsv: string): FailureSplit | null {
  const lines = countsCsv.split('\n').filter((l) => l.trim() !== '');
  if (lines.length < 2) return null;
  const header = lines[0]!.split(';');
  const last = lines[lines.length - 1]!.split(';');
  const step = (col: string) => Number(/^(\d+)_/.exec(col)?.[1] ?? Number.NaN);
  const ackCol = header.find((c) => /^\d+_ACK_Sent$/.test(c));
  if (ackCol === undefined) return null;
  const ackStep = step(ackCol);
  let unanswered = 0;
  let byeLost = 0;
  let unexpected = 0;
  let unexpectedInSetup = 0;
  header.forEach((col, i) => {
    const n = Number(last[i]);
    if (!Number.isFinite(n)) return;
    if (/^\d+_.+_Unexp$/.test(col)) {
      unexpected += n;
      if (step(col) < ackStep) unexpectedInSetup += n;
    }
    if (!/^\d+_.+_Timeout$/.test(col)) return;
    if (step(col) < ackStep) unanswered += n;
    else byeLost += n;
  });
  return { unanswered, byeLost, unexpected, failedInSetup: unanswered + unexpectedInSetup };
}
