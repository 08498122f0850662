/**
 * Fair admission at one LB node, the I/O shell (issue 14; docs/fairness.md): each tick it writes the
 * source groups file when the groups changed (and reloads it), reads the LB's per-source counters,
 * and writes the shares the law gives (only those that moved, all of them now and then so that the
 * LB's autoexpire never drops them). Every decision is in scoring/source-rates.ts,
 * scoring/source-shares.ts and kamailio/address-file.ts; this class only carries them out.
 * It never throws: a failing RPC or file write leaves the LB on the last values it was given, is
 * said in the tick's outcome, and is tried again at the next tick.
 */
import type { FairnessConfig, LbNodeConfig } from '../config/types.js';
import type { LimitCps } from '../kamailio/admission.js';
import { formatAddressFile, groupKey } from '../kamailio/address-file.js';
import {
  deleteSourceEntry,
  readSourceTable,
  setSourceEntry,
  shareEntry,
  toleranceEntry,
  type SourceCounts,
} from '../kamailio/source-table.js';
import type { KamailioRpcClient } from '../kamailio/rpc.js';
import { addCounts, advanceRates, demandOf, type KeyRates, type RateState } from '../scoring/source-rates.js';
import { entryWrites, planSetShares, type GroupPolicy, type SetShares } from '../scoring/source-shares.js';
import type { ListFileTransport } from './transports/transport.js';

/**
 * Every share is written again at least this often: the LB forgets an entry 120 s after its last
 * write (sipweigh_src autoexpire), and a share that stayed within the deadband is not rewritten.
 */
export const SHARE_REFRESH_MS = 30_000;

/** Sources whose totals are kept one by one per set; past it the smallest are summed into one. */
export const MAX_TOTAL_KEYS = 5000;

export interface SourceSettings {
  readonly fairness: FairnessConfig;
  /** This node's admission limit per set (calls/s, null = no limit); null before the first cycle. */
  readonly limits: ReadonlyMap<number, LimitCps> | null;
  /** This node's fraction of the pool's limit: a group's guarantee is split like the limit. */
  readonly fraction: number;
}

export type SourceStep =
  | { readonly kind: 'ok' }
  | { readonly kind: 'missing' }
  | { readonly kind: 'failed'; readonly stage: 'groups' | 'read' | 'write'; readonly error: string };

export interface SourceTick {
  readonly step: SourceStep;
  /** The groups file was written and reloaded in this tick. */
  readonly groupsLoaded: { readonly groups: number; readonly networks: number } | null;
}

/** What this node knows of its sources, for the report. */
export interface NodeSources {
  readonly node: string;
  /** Per set, per key: calls since the controller started (the smallest folded into `folded`). */
  readonly totals: ReadonlyMap<number, ReadonlyMap<string, SourceCounts>>;
  readonly folded: ReadonlyMap<number, { readonly keys: number; readonly counts: SourceCounts }>;
  readonly rates: ReadonlyMap<number, ReadonlyMap<string, KeyRates>>;
  /** The last shares per set with a limit (fair share on). */
  readonly shares: ReadonlyMap<number, SetShares>;
}

/** The group policies by LB key at one node, holding `fraction` of the pool's limit (pure). */
export function groupPolicies(f: FairnessConfig, fraction: number): Map<string, GroupPolicy> {
  return new Map(
    f.groups.map((g, i) => [
      groupKey(i),
      { name: g.name, weight: g.weight, guaranteedCps: g.guaranteed_cps * fraction },
    ]),
  );
}

export class SourceLink {
  private rates: RateState | null = null;
  private readonly totals = new Map<number, Map<string, SourceCounts>>();
  private readonly folded = new Map<number, { keys: number; counts: SourceCounts }>();
  private shares = new Map<number, SetShares>();
  private readonly refreshedAt = new Map<number, number>();
  /** The groups file content the LB has loaded; null until it did. */
  private loadedGroups: string | null = null;
  private running = false;

  constructor(
    readonly config: LbNodeConfig,
    private readonly rpc: Pick<KamailioRpcClient, 'call'>,
    private readonly groupsFile: ListFileTransport | null,
  ) {}

  get name(): string {
    return this.config.name;
  }

  /** One round; null when the previous one is still running (a slow LB is not piled upon). */
  async tick(settings: SourceSettings, nowMs: number): Promise<SourceTick | null> {
    if (this.running) return null;
    this.running = true;
    try {
      return await this.round(settings, nowMs);
    } finally {
      this.running = false;
    }
  }

  private async round(s: SourceSettings, nowMs: number): Promise<SourceTick> {
    let groupsLoaded: SourceTick['groupsLoaded'] = null;
    let groupsError: Error | null = null;
    if (this.groupsFile !== null) {
      const f = s.fairness;
      try {
        const content = formatAddressFile(f.groups);
        if (content !== this.loadedGroups) {
          await this.groupsFile.write(content);
          await this.rpc.call('permissions.addressReload', []);
          this.loadedGroups = content;
          const networks = f.groups.reduce((n, g) => n + g.networks.length, 0);
          groupsLoaded = { groups: f.groups.length, networks };
        }
      } catch (e) {
        // Shares go on without the groups: grouped sources count as their own IPs meanwhile.
        groupsError = e as Error;
      }
    }
    const step = await this.sharesRound(s, nowMs);
    if (groupsError !== null && step.kind !== 'failed') {
      return { step: { kind: 'failed', stage: 'groups', error: groupsError.message }, groupsLoaded };
    }
    return { step, groupsLoaded };
  }

  private async sharesRound(s: SourceSettings, nowMs: number): Promise<SourceStep> {
    let table;
    try {
      table = await readSourceTable(this.rpc);
    } catch (e) {
      // The read fails exactly when the LB is busiest (a flood makes the dump large and slow): the
      // shares must not expire then, so the last ones are written again when their refresh is due.
      await this.rewriteLastShares(nowMs).catch(() => undefined);
      return { kind: 'failed', stage: 'read', error: (e as Error).message };
    }
    if (table === null) return { kind: 'missing' };
    const step = advanceRates(this.rates, table.counters, nowMs);
    this.rates = step.state;
    addCounts(this.totals, step.deltas);
    this.foldSmallest();

    const policy = { otherReserve: s.fairness.other_reserve, groups: groupPolicies(s.fairness, s.fraction) };
    const shares = new Map<number, SetShares>();
    const sets = new Set([...table.shares.keys(), ...table.tolerances.keys(), ...(s.limits?.keys() ?? [])]);
    try {
      for (const set of [...sets].sort((a, b) => a - b)) {
        const limit = s.limits?.get(set);
        const held = {
          shares: table.shares.get(set) ?? new Map<string, number>(),
          toleranceUs: table.tolerances.get(set),
        };
        let desired: SetShares | null = null;
        if (s.fairness.enabled) {
          // No limit (or none known): the LB admits everyone and shares are moot; leave them be.
          if (limit === undefined || limit === null || limit <= 0) continue;
          const rates = this.rates.rates.get(set) ?? new Map();
          // One source alone has nobody to be fair to: no shares, the set's limiter alone serves it
          // (docs/fairness.md). Shares of its own would only add their tolerance to the set's. An
          // operator's group sending keeps its share even alone: a trunk the operator declared must be
          // protected the very second a flood appears, not a round later.
          if (sendingKeys(rates) >= 2 || sendingGroup(rates, policy.groups)) {
            desired = planSetShares(limit, rates, policy);
            shares.set(set, desired);
          }
        }
        const due = nowMs - (this.refreshedAt.get(set) ?? -Infinity) >= SHARE_REFRESH_MS;
        const plan = entryWrites(desired, held, s.fairness.deadband, desired !== null && due);
        if (plan.removeTolerance) await deleteSourceEntry(this.rpc, toleranceEntry(set));
        for (const w of plan.set) {
          await setSourceEntry(
            this.rpc,
            w.key === null ? toleranceEntry(set) : shareEntry(set, w.key),
            w.value,
          );
        }
        for (const key of plan.remove) await deleteSourceEntry(this.rpc, shareEntry(set, key));
        if (desired !== null && due) this.refreshedAt.set(set, nowMs);
      }
    } catch (e) {
      this.shares = shares;
      return { kind: 'failed', stage: 'write', error: (e as Error).message };
    }
    this.shares = shares;
    return { kind: 'ok' };
  }

  /** Writes the last shares of every set whose refresh is due, as they were (no read needed). */
  private async rewriteLastShares(nowMs: number): Promise<void> {
    for (const [set, last] of [...this.shares].sort(([a], [b]) => a - b)) {
      if (nowMs - (this.refreshedAt.get(set) ?? -Infinity) < SHARE_REFRESH_MS) continue;
      const plan = entryWrites(last, { shares: new Map(), toleranceUs: undefined }, 0, true);
      for (const w of plan.set) {
        await setSourceEntry(
          this.rpc,
          w.key === null ? toleranceEntry(set) : shareEntry(set, w.key),
          w.value,
        );
      }
      this.refreshedAt.set(set, nowMs);
    }
  }

  /** Keeps the totals bounded whatever a flood of spoofed addresses does: the smallest half is summed. */
  private foldSmallest(): void {
    for (const [set, keys] of this.totals) {
      if (keys.size <= MAX_TOTAL_KEYS) continue;
      const active = this.rates?.rates.get(set);
      const victims = [...keys]
        .filter(([k]) => !active?.has(k))
        .sort(([, a], [, b]) => a.refused - b.refused || a.offered - b.offered)
        .slice(0, Math.ceil(keys.size / 2));
      const f = this.folded.get(set) ?? { keys: 0, counts: { offered: 0, admitted: 0, refused: 0 } };
      for (const [k, c] of victims) {
        keys.delete(k);
        f.keys += 1;
        f.counts = {
          offered: f.counts.offered + c.offered,
          admitted: f.counts.admitted + c.admitted,
          refused: f.counts.refused + c.refused,
        };
      }
      this.folded.set(set, f);
    }
  }

  sources(): NodeSources {
    return {
      node: this.name,
      totals: this.totals,
      folded: this.folded,
      rates: this.rates?.rates ?? new Map(),
      shares: this.shares,
    };
  }

  async close(): Promise<void> {
    await this.groupsFile?.close();
  }
}

/** Keys that sent calls lately (their demand is above 0). */
export function sendingKeys(rates: ReadonlyMap<string, KeyRates>): number {
  let n = 0;
  for (const r of rates.values()) if (demandOf(r) > 0) n++;
  return n;
}

/** Whether a key of one of the operator's groups sent calls lately. */
export function sendingGroup(
  rates: ReadonlyMap<string, KeyRates>,
  groups: ReadonlyMap<string, unknown>,
): boolean {
  for (const [key, r] of rates) if (groups.has(key) && demandOf(r) > 0) return true;
  return false;
}
