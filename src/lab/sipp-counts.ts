/**
 * Where a sipp UAC's failed calls gave up, from its `-trace_counts` counts: the one reading of them
 * for the failover bench and the demo. Pure.
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
 * The split from the last row of a `-trace_counts` file (`SippResult.counts`, or `parseSippCounts`:
 * cumulative counts by column, one column per scenario step and event, e.g. `3_200_Timeout`,
 * `7_ACK_Sent`, `10_200_Timeout`). Null when the scenario has no ACK step (or there was no row).
 */
export function splitFailures(counts: Readonly<Record<string, number>>): FailureSplit | null {
  const columns = Object.keys(counts);
  const step = (col: string) => Number(/^(\d+)_/.exec(col)?.[1] ?? Number.NaN);
  const ackCol = columns.find((c) => /^\d+_ACK_Sent$/.test(c));
  if (ackCol === undefined) return null;
  const ackStep = step(ackCol);
  let unanswered = 0;
  let byeLost = 0;
  let unexpected = 0;
  let unexpectedInSetup = 0;
  for (const col of columns) {
    const n = counts[col] ?? 0;
    if (/^\d+_.+_Unexp$/.test(col)) {
      unexpected += n;
      if (step(col) < ackStep) unexpectedInSetup += n;
    }
    if (!/^\d+_.+_Timeout$/.test(col)) continue;
    if (step(col) < ackStep) unanswered += n;
    else byeLost += n;
  }
  return { unanswered, byeLost, unexpected, failedInSetup: unanswered + unexpectedInSetup };
}
