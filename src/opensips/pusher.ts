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
 * When only states differ (an OpenSIPS restart loads every row Active), steps 1-3 are skipped.
 *
 * The cache (the desired list equals the last verified one: answer in sync without reading) is kept
 * only while the LB is the same run: each cycle asks MI `uptime` for its start time, because an
 * OpenSIPS restart loads every destination Active (the state column is not read with
 * persistent_state=0), so drained and zero-weight backends would be back in rotation until the next
 * forced reconcile.
 *
 * A failure after `ds_reload` (a `ds_set_state`, or a read-back that differs) puts the last verified
 * list back (else what the LB listed before the push): routes if they lack one of its URIs, table,
 * `dbt_reload`, `ds_reload`, states; so the LB stays on its last good weights, as with the Kamailio
 * pusher. Never throws; calls are serialised.
 */
import { performance } from 'node:perf_hooks';
import { describeDifference, diffDispatcher, type DestinationDiff } from '../push/diff.js';
import type { PushDurations, PushOptions, PushOutcome, Rollback } from '../push/pusher.js';
import type { Destination } from '../kamailio/dispatcher-list.js';
import type { DispatcherListResult, DispatcherTarget } from '../kamailio/dispatcher-list-reply.js';
import type { ListFileTransport } from '../push/transports/transport.js';
import { destinationUris, formatDestinationsRoute, formatDispatcherTable } from './dispatcher-table.js';
import { DRAINED_ATTR, parseDsList, stateLetter } from './ds-list.js';
import { MiError, type OpenSipsMiClient } from './mi.js';

export interface OpenSipsPusherOptions {
  readonly mi: Pick<OpenSipsMiClient, 'call' | 'target'>;
  /** Writes the dispatcher table file. */
  readonly table: ListFileTransport;
  /** Writes the generated destinations route file. */
  readonly destinations: ListFileTransport;
  readonly deadlineMs?: number;
  readonly managedSets?: ReadonlySet<number>;
}

/**
 * The desired list as the OpenSIPS table holds it: a disabled destination (a drain; set Inactive
 * over MI, OpenSIPS has no disabled) carries `sw_drained=1` in its attrs, so that ds_list reads it
 * back as disabled (`listedState`) and a restarted controller keeps the drain.
 */
export function asOpenSips(desired: readonly Destination[]): Destination[] {
  return desired.map((d) =>
    d.state === 'disabled' ? { ...d, extraAttrs: { ...d.extraAttrs, [DRAINED_ATTR]: '1' } } : d,
  );
}

/** The identity of an OpenSIPS run from MI `uptime`: its "Up since" (start time), null if absent. */
export function runIdentity(uptime: unknown): string | null {
  if (typeof uptime !== 'object' || uptime === null) return null;
  const since = (uptime as Record<string, unknown>)['Up since'];
  return typeof since === 'string' && since !== '' ? since : null;
}

/**
 * Whether the cache may answer in sync without reading the LB (pure): not forced, the same list and
 * routes as last verified, and the LB still the run it was verified on (an unknown run never is).
 */
export function cacheAnswers(c: {
  readonly force: boolean;
  readonly key: string;
  readonly verifiedKey: string | null;
  readonly routesSame: boolean;
  readonly run: string | null;
  readonly verifiedRun: string | null;
}): boolean {
  return (
    !c.force &&
    c.verifiedKey !== null &&
    c.key === c.verifiedKey &&
    c.routesSame &&
    c.run !== null &&
    c.run === c.verifiedRun
  );
}

/** Whether the table must be rewritten and reloaded (pure): anything but state changes differs. */
export function needsTable(differences: readonly DestinationDiff[]): boolean {
  return differences.some((d) => d.kind !== 'changed' || d.changes.some((c) => c.field !== 'state'));
}

/**
 * What the LB listed, as a desired list to write back (pure): null when a row cannot be written
 * (a weight outside 1..100, no duid). Probing (trying) is written back as inactive: out of rotation
 * either way (`dst_is_active`).
 */
export function listedAsDesired(targets: readonly DispatcherTarget[]): Destination[] | null {
  const out: Destination[] = [];
  for (const t of targets) {
    const duid = t.attrs.duid ?? t.duid;
    if (
      duid === null ||
      t.rweight === null ||
      !Number.isInteger(t.rweight) ||
      t.rweight < 1 ||
      t.rweight > 100
    )
      return null;
    const extra = Object.entries(t.attrs).filter(([k]) => k !== 'duid' && k !== 'rweight');
    out.push({
      setId: t.setId,
      uri: t.uri,
      state: t.state === 'trying' ? 'inactive' : t.state,
      rweight: t.rweight,
      priority: t.priority,
      duid,
      ...(extra.length > 0 ? { extraAttrs: Object.fromEntries(extra) } : {}),
    });
  }
  return out;
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
  /** The OpenSIPS run (MI uptime "Up since") the cached list was verified on. */
  private verifiedRun: string | null = null;
  /** The last list verified on the LB: what a failed push puts back. */
  private lastGood: readonly Destination[] | null = null;
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
    // Read before the list: a restart after this read shows in the list (every row Active).
    const asked = await timed('readMs', () => this.runIdentity());
    // An MI that cannot be reached fails the push here: reading the list would only try again (and
    // count twice against an LB that is down).
    if ('unreachable' in asked)
      return { kind: 'failed', stage: 'read', reason: asked.unreachable, changes: null, durations: done() };
    const { run } = asked;
    const cached = cacheAnswers({
      force: options.force ?? false,
      key: verifiedKey,
      verifiedKey: this.lastVerified,
      routesSame: routes === this.lastRoutes,
      run,
      verifiedRun: this.verifiedRun,
    });
    if (cached) return { kind: 'in_sync', checkedBy: 'cache', durations: done() };
    this.lastVerified = null;
    const verified = (): void => {
      this.lastVerified = verifiedKey;
      this.verifiedRun = run;
      this.lastGood = desired;
    };

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
      verified();
      return { kind: 'in_sync', checkedBy: 'read', durations: done() };
    }
    // Put back after a failure past ds_reload: the last verified list, else what the LB listed.
    const restoreTo = this.lastGood ?? listedAsDesired(before.targets);
    const rollback = (): Promise<Rollback> => timed('rollbackMs', () => this.restore(restoreTo, desired));

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
    const tableReloaded = !inSync && needsTable(differences);
    if (tableReloaded) {
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
    }
    if (!inSync) {
      const states = await timed('reloadMs', () => this.fixStates(desired));
      if (states !== null) {
        // Only a reloaded table is put back: states alone are set again by the retry.
        const back = tableReloaded ? `; rollback: ${describeRollback(await rollback())}` : '';
        return {
          kind: 'failed',
          stage: 'reload',
          reason: `${states}${back}`,
          changes: differences,
          durations: done(),
        };
      }
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
        rollback: await rollback(),
        durations: done(),
      };
    }
    verified();
    return { kind: 'applied', changes: differences, durations: done() };
  }

  /**
   * The LB's run (MI uptime): null when OpenSIPS answers without one or refuses the command (then the
   * cache does not answer); `unreachable` when the MI did not answer at all.
   */
  private async runIdentity(): Promise<{ run: string | null } | { unreachable: string }> {
    try {
      return { run: runIdentity(await this.options.mi.call('uptime', {}, this.options.deadlineMs)) };
    } catch (e) {
      if (e instanceof MiError) return { run: null };
      return { unreachable: `uptime on ${this.options.mi.target}: ${(e as Error).message}` };
    }
  }

  /**
   * Writes `previous` back: routes first when they lack one of its URIs (the routes now name those of
   * `current`), then the table, dbt_reload, ds_reload and its states.
   */
  private async restore(
    previous: readonly Destination[] | null,
    current: readonly Destination[],
  ): Promise<Rollback> {
    if (previous === null) {
      return { kind: 'impossible', reason: 'the list the LB held before cannot be written back' };
    }
    let table: string;
    try {
      table = formatDispatcherTable(previous);
    } catch (e) {
      return { kind: 'impossible', reason: (e as Error).message };
    }
    const uris = destinationUris(current);
    const missing = destinationUris(previous).filter((u) => !uris.includes(u));
    if (missing.length > 0) {
      const routes = formatDestinationsRoute([...uris, ...missing]);
      const written = await this.write(this.options.destinations, routes);
      if (written !== null) return { kind: 'failed', reason: `destinations: ${written}` };
      const reloaded = await this.mi('reload_routes');
      if (reloaded !== null) return { kind: 'failed', reason: `reload_routes: ${reloaded}` };
      this.lastRoutes = routes;
    }
    const written = await this.write(this.options.table, table);
    if (written !== null) return { kind: 'failed', reason: `write: ${written}` };
    for (const cmd of ['dbt_reload', 'ds_reload']) {
      const failed = await this.mi(cmd);
      if (failed !== null) return { kind: 'failed', reason: `${cmd}: ${failed}` };
    }
    const states = await this.fixStates(previous);
    if (states !== null) return { kind: 'failed', reason: states };
    return { kind: 'reloaded' };
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

function describeRollback(r: Rollback): string {
  return r.kind === 'reloaded' ? 'the previous list reloaded' : `${r.kind}: ${r.reason}`;
}
