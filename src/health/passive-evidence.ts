/**
 * Passive evidence, pure: the INVITE retransmissions an LB counted per destination -> whether a
 * backend should become suspect. A backend that answers sends 100 Trying at once, so a client that
 * retransmits its INVITE has had no answer for T1 (500 ms): evidence that the backend is not
 * answering SIP. It is only evidence: a slow but alive backend (a standing queue, a lost 100 Trying)
 * sees retransmissions too, so the rule raises suspicion (faster probing) and never takes a backend
 * out by itself; the heartbeat confirms (k misses: down) or clears it (one answer: up).
 *
 * The rule: a backend whose destination had at least EVIDENCE_MIN_RTX retransmissions, summed over
 * every LB node, in the reads of the last EVIDENCE_WINDOW_MS, and whose last probe answer is older
 * than the start of the earliest read interval that counted one of them (it has not answered since
 * its calls began to be retransmitted) and older than `quietMs` (the probe interval plus the probe
 * timeout: an up backend answers at least that often, so a younger answer says nothing when the
 * interval is long against the refresh), is suspect. A backend that answers its probes while its calls
 * are retransmitted (an overloaded one, or one whose SIP server alone died while its agent lives) is
 * left to the load signals: suspecting it would only flip it up and suspect at every probe.
 */

/** Retransmissions (all LB nodes together) within the window that make a backend suspect. */
export const EVIDENCE_MIN_RTX = 2;
/** How far back retransmissions count: two INVITE retransmission intervals of one call (T1, 2×T1). */
export const EVIDENCE_WINDOW_MS = 1000;

/** One read of the LB's counters: `rtx` retransmissions counted between `since` and `at` (monotonic ms). */
export interface EvidenceSample {
  readonly since: number;
  readonly at: number;
  readonly rtx: number;
}

/** The samples of one destination that are still in the window at `now` (only non-zero ones are kept). */
export function foldEvidence(
  window: readonly EvidenceSample[],
  sample: EvidenceSample,
  now: number,
): EvidenceSample[] {
  const kept = window.filter((s) => s.at > now - EVIDENCE_WINDOW_MS);
  if (sample.rtx > 0) kept.push(sample);
  return kept;
}

export interface EvidenceVerdict {
  /** Retransmissions in the window. */
  readonly rtx: number;
  readonly suspect: boolean;
}

/**
 * `lastAnswerAt`: monotonic ms of the backend's last probe answer (NaN: never answered); `quietMs`:
 * how long an answering backend may stay quiet (probe interval + probe timeout).
 */
export function evidenceVerdict(
  window: readonly EvidenceSample[],
  lastAnswerAt: number,
  now: number,
  quietMs: number,
): EvidenceVerdict {
  const inWindow = window.filter((s) => s.at > now - EVIDENCE_WINDOW_MS && s.rtx > 0);
  const rtx = inWindow.reduce((n, s) => n + s.rtx, 0);
  if (rtx < EVIDENCE_MIN_RTX) return { rtx, suspect: false };
  const began = Math.min(...inWindow.map((s) => s.since));
  const answered = Number.isNaN(lastAnswerAt) ? -Infinity : lastAnswerAt;
  return { rtx, suspect: answered < began && now - answered > quietMs };
}
