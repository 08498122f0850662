/**
 * Replay protection for what the agent accepts from controllers (probes, hello_acks).
 *
 * PeerReplayState follows one sender whose boot id changes only on restart, retiring the old one.
 * An agent may hear two live controllers (a standby, or the old and the new during a restart), and
 * retiring one when the other speaks would drop every second probe as "replayed". So the agent keeps
 * one window per controller boot id, for the few most recent boots. Freshness still bounds how old an
 * accepted message can be, whatever the windows remember.
 */
import type { DropReason } from '../heartbeat/codec.js';
import { DEFAULT_FRESHNESS } from '../config/freshness.js';
import { PeerReplayState, type FreshnessLimits } from '../heartbeat/replay.js';

/** Controller boot ids remembered at once; the least recently heard is forgotten first. */
export const REMEMBERED_CONTROLLER_BOOTS = 8;

export class ControllerReplay {
  private readonly byBoot = new Map<string, PeerReplayState>();

  constructor(private readonly limits: FreshnessLimits = DEFAULT_FRESHNESS) {}

  /** Null when (boot, seq, ts) is accepted (and recorded), else why not. */
  admit(boot: string, seq: number, ts: number, nowWallMs: number): DropReason | null {
    let state = this.byBoot.get(boot);
    const isNew = state === undefined;
    state ??= new PeerReplayState();
    const verdict = state.admit(boot, seq, ts, nowWallMs, this.limits);
    if (verdict !== null) return verdict;
    // Most recently heard last, so the first key is the one to forget.
    this.byBoot.delete(boot);
    this.byBoot.set(boot, state);
    if (isNew && this.byBoot.size > REMEMBERED_CONTROLLER_BOOTS) {
      const oldest = this.byBoot.keys().next().value;
      if (oldest !== undefined) this.byBoot.delete(oldest);
    }
    return null;
  }
}
