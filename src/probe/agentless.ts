/**
 * Agentless backends, the decisions (pure): which backends are probed over SSH, at what cadence,
 * and what one SSH probe means for the health state machine and the latest metrics. The shell that
 * runs the probes is ssh-poller.ts; the core applies the verdicts (probe-core.ts).
 *
 * One SSH probe is one remote command that reads the host's figures and, with kamcmd, Kamailio's
 * (metrics/ssh-collector.ts). It is to an agentless backend what a probe and its report are to an
 * agent: an answer in time is an ok with its round trip and its figures as the report's metrics;
 * no answer (SSH down, a refused host key, an overrun) is a miss. Unlike an agent's report, it also
 * answers whether the SIP server itself is there, because nothing else would: no UDP socket bound
 * on the SIP port, or (with kamcmd) a Kamailio that answers no control command, is a miss too.
 */
import type { SshConfig } from '../config/types.js';
import type { AgentlessSample } from '../metrics/ssh-collector.js';
import { toReportMetrics } from '../metrics/report-metrics.js';
import { emptyMeasurements } from '../metrics/types.js';
import type { ReportMetrics } from '../heartbeat/messages.js';

/** How a backend is probed: its configured agent, SSH (an `ssh:` section and no agent), or the address of its agent's hello. */
export type ProbeVia = 'agent' | 'ssh' | 'hello';

export function probedBy(spec: { readonly agent?: unknown; readonly ssh?: unknown }): ProbeVia {
  if (spec.agent !== undefined) return 'agent';
  if (spec.ssh !== undefined) return 'ssh';
  return 'hello';
}

/** The SSH settings of a backend that is probed over SSH, else null (an agent, when configured, wins). */
export function agentlessSsh(spec: { readonly agent?: unknown; readonly ssh?: SshConfig }): SshConfig | null {
  return probedBy(spec) === 'ssh' ? (spec.ssh ?? null) : null;
}

/** Equal SSH settings (a reload that changes none of them leaves the running poller alone). */
export function sameSsh(a: SshConfig | null | undefined, b: SshConfig | null | undefined): boolean {
  if (!a || !b) return !a === !b;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].every((k) => a[k as keyof SshConfig] === b[k as keyof SshConfig]);
}

export interface PollCadence {
  /** One probe per interval (the ssh section's interval_ms). */
  readonly intervalMs: number;
  /** A probe not answered this long after it started is a miss (and one more per interval after). */
  readonly timeoutMs: number;
  /**
   * How long the remote command may run before its shell is thrown away. Longer than the timeout:
   * the first command on a new connection starts the account's login shell (seconds on some hosts),
   * and cutting it at the timeout would discard that shell and start again, for ever.
   */
  readonly commandDeadlineMs: number;
}

export function pollCadence(ssh: Pick<SshConfig, 'interval_ms'>): PollCadence {
  const intervalMs = ssh.interval_ms;
  return { intervalMs, timeoutMs: intervalMs, commandDeadlineMs: Math.max(15_000, 4 * intervalMs) };
}

/**
 * Delay from the end of one probe to the start of the next: an interval from the previous start
 * (jittered by ±jitter), faster by `suspectSpeedup` while the backend is suspect (as the heartbeat
 * does), and never negative (a probe that overran is followed at once).
 */
export function nextPollDelayMs(
  cadence: PollCadence,
  opts: {
    readonly suspect: boolean;
    readonly elapsedMs: number;
    readonly jitter: number;
    readonly suspectSpeedup: number;
    readonly random: number;
  },
): number {
  const base = opts.suspect ? cadence.intervalMs / opts.suspectSpeedup : cadence.intervalMs;
  const jittered = base * (1 - opts.jitter + 2 * opts.jitter * opts.random);
  return Math.max(0, jittered - opts.elapsedMs);
}

/** What one SSH probe came back with. */
export type PollOutcome =
  | { readonly kind: 'answered'; readonly rttMs: number; readonly sample: AgentlessSample }
  /** No answer: SSH not connected (why, e.g. a refused host key), the command overran or failed. */
  | { readonly kind: 'failed'; readonly error: string };

/** What the core does with it: an ok with its round trip and metrics, or a miss and why. */
export type PollVerdict =
  | { readonly ok: true; readonly rttMs: number; readonly metrics: ReportMetrics }
  | { readonly ok: false; readonly cause: string };

export function judgePoll(
  outcome: PollOutcome,
  capacity: number,
  cadence: PollCadence,
  sipSocket: string,
): PollVerdict {
  if (outcome.kind === 'failed') return { ok: false, cause: outcome.error };
  if (outcome.rttMs > cadence.timeoutMs) {
    return {
      ok: false,
      cause: `answered in ${Math.round(outcome.rttMs)} ms, over the ${cadence.timeoutMs} ms timeout`,
    };
  }
  const s = outcome.sample;
  if (s.sipSocket === 'absent')
    return { ok: false, cause: `no SIP server: no UDP socket bound to ${sipSocket}` };
  if (s.kamailio === 'silent') {
    const why = s.problems.filter((p) => /^(tm\.stats|dlg\.stats_active|stats\.fetchn):/.test(p));
    return {
      ok: false,
      cause: `Kamailio answers no kamcmd call${why.length > 0 ? `: ${why[0]!.slice(0, 200)}` : ''}`,
    };
  }
  return { ok: true, rttMs: outcome.rttMs, metrics: agentlessMetrics(s, capacity) };
}

/**
 * The figures as a report's metrics, exactly as an agent would send them (same field clamping).
 * An agentless backend never reports draining (only an agent can say so), and its OPTIONS round
 * trip is unknown (timing SIP from the controller would time the network, not the server).
 */
export function agentlessMetrics(sample: AgentlessSample, capacity: number): ReportMetrics {
  return toReportMetrics({ ...emptyMeasurements(), ...sample.values, options_rtt_ms: null }, capacity, false);
}

/** `user@host:port`, how the API and logs name an SSH target. */
export function sshTargetName(ssh: Pick<SshConfig, 'username' | 'host' | 'port'>): string {
  return `${ssh.username}@${ssh.host}:${ssh.port}`;
}

/** `address:port` or `*:port`, how a cause names the SIP socket it looked for. */
export function sipSocketName(ssh: Pick<SshConfig, 'sip_address' | 'sip_port'>): string {
  return `${ssh.sip_address ?? '*'}:${ssh.sip_port}`;
}
