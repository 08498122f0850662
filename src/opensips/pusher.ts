/**
 * Brings one OpenSIPS LB's dispatcher to a desired list (the OpenSIPS twin of src/push/pusher.ts,
 * same outcomes): read `ds_list`, diff, and only when something differs
 *   1. rewrite the generated destinations route (one literal send() per backend) and `reload_routes`,
 *      when the set of destination URIs differs from what this pusher last wrote: before the table,
 *      so that a new backend has its literal send() before the dispatcher can pick it;
 *   2. write the db_text table `dispatcher` whole (atomically, by the transport);
 *   3. MI `dbt_reload` (db_text caches tables: a file written later is not seen without it), then
 *      `ds_reload` (keeps runtime states of destinations it already had);
 *   4. read `ds_list` back and set every state that differs (`ds_set_state`): with
 *      persistent_state=0 OpenSIPS loads every new destination active and never writes the table;
 *   5. read back again and verify.
 * A verify failure is reported, not rolled back (unlike the Kamailio pusher): OpenSIPS refuses a table
 * it cannot load as a whole, and the controller's next cycle writes again.
 * Never throws; calls are serialised.
 */
import { performance } from 'node:perf_hooks';
import { describeDifference, diffDispatcher } from '../push/diff.js';
import type { PushDurations, PushOptions, PushOutcome } from '../push/pusher.js';
import type { Destination } from '../kamailio/dispatcher-list.js';
import type { DispatcherListResult } from '../kamailio/dispatcher-list-reply.js';
import type { ListFileTransport } from '../push/transports/transport.js';
import { destinationUris, formatDestinationsRoute, formatDispatcherTable } from './dispatcher-table.js';
import { openSipsState, parseDsList, stateLetter } from './ds-list.js';
import type { OpenSipsMiClient } from './mi.js';

export interface OpenSipsPusherOptions {
  readonly mi: Pick<OpenSipsMiClient, 'call' | 'target'>;
  /** Writes the dispatcher table file. */
  readonly table: ListFileTransport;
  /** Writes the generated destinations route file. */
  readonly destinations: ListFileTransport;
  readonly deadlineMs?: number;
  readonly managedSets?: ReadonlySet<number>;
}

/** The desired list as OpenSIPS can hold it (no "disabled": inactive). */
export function asOpenSips(desired: readonly Destination[]): Destination[] {
  return desired.map((d) => ({ ...d, state: openSipsState(d.state) }));
}

/** Reads an OpenSIPS LB's dispatcher (MI ds_list full) as the controller's targets; never throws. */
export async function fetchOpenSipsList(
  mi: Pick<OpenSipsMiClient, 'call' | 'target'>,
  deadlineMs?: number,
): Promise<DispatcherListResult> {
  try {
    return parseDsList(await mi.call('ds_list', { full: 1 }, deadlineMs));
  } catch (e) {
    return { ok: false, error: `ds_list on ${mi.target}: ${(e as Error).message}` };
  }
}

export class OpenSipsDispatcherPusher {
  private lastVerified: string | null = null;
  private lastRoutes: string | null = null;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: OpenSipsPusherOptions) {}

  describe(): string {
    return `${this.options.mi.target} (${this.options.table.describe()})`;
  }

  readList(): Promise<DispatcherListResult> {
    return fetchOpenSipsList(this.options.mi, this.options.deadlineMs);
  }

  push(desired: readonly Destination[], options: PushOptions = {}): Promise<PushOutcome> {
    const run = this.queue.then(() => this.run(asOpenSips(desired), options));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async run(desired: readonly Destination[], options: PushOptions): Promise<PushOutcome> {
    const t0 = performance.now();
    const durations: { -readonly [K in Exclude<keyof PushDurations, 'totalMs'>]?: number } = {};
    const timed = async <T>(stage: keyof typeof durations, fn: () => Promise<T>): Promise<T> => {
      const start = performance.now();
      try {
        return await fn();
      } finally {
        durations[stage] = (durations[stage] ?? 0) + performance.now() - start;
      }
    };
    const done = (): PushDurations => ({ ...durations, totalMs: performance.now() - t0 });

    let table: string;
    let routes: string;
    try {
      table = formatDispatcherTable(desired);
      routes = formatDestinationsRoute(destinationUris(desired));
    } catch (e) {
      return {
        kind: 'failed',
        stage: 'input',
        reason: (e as Error).message,
        changes: null,
        durations: done(),
      };
    }
    // The table carries no states (OpenSIPS would not read them): the cache key does.
    const verifiedKey = `${table}\n${desired.map((d) => d.state).join(',')}`;
    if (!options.force && verifiedKey === this.lastVerified && routes === this.lastRoutes) {
      return { kind: 'in_sync', checkedBy: 'cache', durations: done() };
    }
    this.lastVerified = null;

    const before = await timed('readMs', () => this.readList());
    if (!before.ok)
      return { kind: 'failed', stage: 'read', reason: before.error, changes: null, durations: done() };
    const managed = this.options.managedSets;
    const foreign = managed
      ? [...new Set(before.targets.map((t) => t.setId))].filter((s) => !managed.has(s))
      : [];
    if (foreign.length > 0) {
      const reason = `the LB lists sets not managed here (${foreign.join(', ')}): rewriting its table would delete them`;
      return { kind: 'failed', stage: 'read', reason, changes: null, durations: done() };
    }
    const { inSync, differences } = diffDispatcher(desired, before.targets);
    if (inSync && routes === this.lastRoutes) {
      this.lastVerified = verifiedKey;
      return { kind: 'in_sync', checkedBy: 'read', durations: done() };
    }

    if (routes !== this.lastRoutes) {
      const failed = await timed('writeMs', () => this.write(this.options.destinations, routes));
      if (failed !== null) {
        return {
          kind: 'failed',
          stage: 'write',
          reason: `destinations: ${failed}`,
          changes: differences,
          durations: done(),
        };
      }
      const reloaded = await timed('reloadMs', () => this.mi('reload_routes'));
      if (reloaded !== null) {
        return {
          kind: 'failed',
          stage: 'reload',
          reason: `reload_routes: ${reloaded}`,
          changes: differences,
          durations: done(),
        };
      }
      this.lastRoutes = routes;
    }
    if (!inSync) {
      const written = await timed('writeMs', () => this.write(this.options.table, table));
      if (written !== null)
        return { kind: 'failed', stage: 'write', reason: written, changes: differences, durations: done() };
      for (const cmd of ['dbt_reload', 'ds_reload']) {
        const failed = await timed('reloadMs', () => this.mi(cmd));
        if (failed !== null) {
          return {
            kind: 'failed',
            stage: 'reload',
            reason: `${cmd}: ${failed}`,
            changes: differences,
            durations: done(),
          };
        }
      }
      const states = await timed('reloadMs', () => this.fixStates(desired));
      if (states !== null)
        return { kind: 'failed', stage: 'reload', reason: states, changes: differences, durations: done() };
    }

    const after = await timed('verifyMs', () => this.readList());
    if (!after.ok) {
      const reason = `read-back failed: ${after.error}`;
      return {
        kind: 'failed',
        stage: 'verify',
        reason,
        changes: differences,
        rollback: null,
        durations: done(),
      };
    }
    const left = diffDispatcher(desired, after.targets);
    if (!left.inSync) {
      const shown = left.differences.slice(0, 3).map(describeDifference).join('; ');
      return {
        kind: 'failed',
        stage: 'verify',
        reason: `the LB loaded another list than written: ${shown}`,
        changes: differences,
        rollback: {
          kind: 'impossible',
          reason: 'the OpenSIPS pusher does not roll back; the next push writes again',
        },
        durations: done(),
      };
    }
    this.lastVerified = verifiedKey;
    return { kind: 'applied', changes: differences, durations: done() };
  }

  /** ds_set_state for every listed destination whose state is not the desired one. */
  private async fixStates(desired: readonly Destination[]): Promise<string | null> {
    const listed = await this.readList();
    if (!listed.ok) return `ds_list after reload: ${listed.error}`;
    for (const d of desired) {
      const t = listed.targets.find((x) => x.setId === d.setId && x.uri === d.uri);
      if (!t || t.state === d.state) continue;
      const failed = await this.mi('ds_set_state', {
        state: stateLetter(d.state),
        group: String(d.setId),
        address: d.uri,
      });
      if (failed !== null) return `ds_set_state ${d.uri}: ${failed}`;
    }
    return null;
  }

  private async mi(
    method: string,
    params: Readonly<Record<string, string | number>> = {},
  ): Promise<string | null> {
    try {
      await this.options.mi.call(method, params, this.options.deadlineMs);
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  }

  private async write(t: ListFileTransport, content: string): Promise<string | null> {
    try {
      await t.write(content);
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  }
}
