/**
 * One LB node as the controller drives it: its JSON-RPC client, the dispatcher pusher (list file +
 * reload + verify) and the admission limiters. `apply` brings the node to one desired state and says
 * what happened; retries, backoff and coalescing are NodeSync's job (src/push/node-sync.ts).
 * Order matters: weights first, then the admission limit, so a limit never arrives for a pool the
 * LB does not route to yet.
 */
import { readFileSync } from 'node:fs';
import type { LbNodeConfig } from '../config/types.js';
import {
  admissionLimiterName,
  limiterChanges,
  readLimiters,
  setIdOfLimiter,
  setLimiter,
  type LimitCps,
} from '../kamailio/admission.js';
import { DispatcherPusher, type PushOutcome } from './pusher.js';
import { asKamailioSlots } from './rweight-slots.js';
import type { Destination } from '../kamailio/dispatcher-list.js';
import type { ListFileTransport } from './transports/transport.js';
import { LocalListFile } from './transports/local-file.js';
import type { ApplyContext, ApplyResult } from './node-sync.js';
import { KamailioRpcClient, RpcMethodError } from '../kamailio/rpc.js';
import { SftpListFile } from './transports/sftp.js';
import { fetchDispatcherList } from '../kamailio/fetch-dispatcher-list.js';
import type { DispatcherListResult } from '../kamailio/dispatcher-list-reply.js';
import { OpenSipsDispatcherPusher } from '../opensips/pusher.js';
import { OpenSipsMiClient } from '../opensips/mi.js';
import { OpenSipsAdmissionRpc } from '../opensips/admission.js';
import type { AdmissionRpc } from '../kamailio/admission.js';

export interface NodeDesired {
  readonly destinations: readonly Destination[];
  readonly admission: AdmissionDesired;
}

/** What the controller wants of a node's admission limiters. */
export type AdmissionDesired =
  /** Limit on new calls/s per dispatcher set at this node; sets not listed are left alone. */
  | { readonly kind: 'limits'; readonly limits: ReadonlyMap<number, LimitCps> }
  /**
   * Admission control is off: no limit on these sets. A limit an earlier config (or run) set is
   * lifted, or the LB would go on refusing calls that nothing asks it to refuse any more.
   */
  | { readonly kind: 'off'; readonly sets: readonly number[] };

export type AdmissionOutcome =
  | { readonly kind: 'off' }
  | { readonly kind: 'in_sync' }
  | { readonly kind: 'applied'; readonly limits: readonly { set: number; limitCps: LimitCps }[] }
  /** Admission is off and the LB still held limits: lifted. */
  | { readonly kind: 'cleared'; readonly sets: readonly number[] }
  /** The LB has no such limiter: its config does not enable SIPWEIGH_ADMISSION_CONTROL (lb.cfg: SW_ADMISSION). */
  | { readonly kind: 'missing'; readonly sets: readonly number[] }
  | { readonly kind: 'failed'; readonly reason: string };

export interface NodeOutcome {
  readonly push: PushOutcome;
  readonly admission: AdmissionOutcome;
  /**
   * The push changed the LB although the controller wanted the same list as at its last success:
   * something else changed the LB (an operator's reload, a restart, an edited file) and this
   * push repaired it.
   */
  readonly driftRepaired: boolean;
}

/**
 * Whether an apply reads the LB even if nothing changed since the last verified push: when asked
 * (a reconcile) and on every retry, since the failed attempt may have half-happened.
 */
export function readsAfresh(ctx: ApplyContext): boolean {
  return ctx.force || ctx.attempt > 0;
}

/**
 * A push that changed the LB although the controller wanted the same list as at its last success
 * repaired drift: nothing of ours changed, so something else changed the LB.
 */
export function isDriftRepair(push: PushOutcome['kind'], list: string, lastGoodList: string | null): boolean {
  return push === 'applied' && list === lastGoodList;
}

/**
 * With admission off, whether the LB's limiters must be read again: once per switch to off (or to
 * another list of sets) and on a forced apply; otherwise only the controller sets them, and it
 * lifted them already.
 */
export function mustReadLiftedLimits(confirmed: string | null, sets: string, force: boolean): boolean {
  return force || confirmed !== sets;
}

/** The way to this node's files (local or SFTP, as its dispatcher list); `path` defaults to the list's. */
export function transportFor(cfg: LbNodeConfig, path: string = cfg.dispatcher_list.path): ListFileTransport {
  const list = cfg.dispatcher_list;
  if (!list.sftp) return new LocalListFile({ path });
  const s = list.sftp;
  let privateKey: Buffer;
  try {
    privateKey = readFileSync(s.private_key_file);
  } catch (e) {
    throw new Error(`LB node ${cfg.name}: cannot read ${s.private_key_file}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return new SftpListFile({
    ssh: {
      host: s.host,
      port: s.port,
      username: s.username,
      privateKey,
      hostFingerprint: s.host_fingerprint,
    },
    path,
  });
}

export class NodeLink {
  readonly rpc: KamailioRpcClient;
  private readonly transport: ListFileTransport;
  /** The Kamailio pusher, or the OpenSIPS one for a node of kind opensips (docs/opensips.md). */
  private readonly pusher: DispatcherPusher | OpenSipsDispatcherPusher;
  /** The destinations route file's transport (OpenSIPS nodes only). */
  private readonly extraTransports: ListFileTransport[] = [];
  private readonly mi: OpenSipsMiClient | null = null;
  /** Where the admission limiters live: the htable over JSON-RPC, or OpenSIPS shared variables over MI. */
  private readonly admissionRpc: AdmissionRpc;
  /** The desired list of the last successful push (to tell drift from a change of our own). */
  private lastGoodList: string | null = null;
  private pushed: ReadonlyMap<string, number> | null = null;
  /** The sets whose limits were last seen lifted while admission is off (no need to read again). */
  private offConfirmed: string | null = null;

  /** `managedSets`: the sets in the controller's config; a list with others is never rewritten. */
  constructor(
    readonly config: LbNodeConfig,
    managedSets: ReadonlySet<number>,
  ) {
    this.rpc = new KamailioRpcClient({
      url: config.rpc.url,
      ...(config.rpc.username !== undefined ? { username: config.rpc.username } : {}),
      ...(config.rpc.password !== undefined ? { password: config.rpc.password } : {}),
      deadlineMs: config.rpc.timeout_ms,
    });
    this.transport = transportFor(config);
    if (config.kind === 'opensips') {
      // Cross-checked at load: an opensips node has its destinations path.
      const destinations = transportFor(config, config.opensips?.destinations_path);
      this.extraTransports.push(destinations);
      this.mi = new OpenSipsMiClient({ url: config.rpc.url, deadlineMs: config.rpc.timeout_ms });
      this.admissionRpc = new OpenSipsAdmissionRpc(this.mi);
      this.pusher = new OpenSipsDispatcherPusher({
        mi: this.mi,
        table: this.transport,
        destinations,
        deadlineMs: config.rpc.timeout_ms,
        managedSets,
      });
    } else {
      this.admissionRpc = this.rpc;
      this.pusher = new DispatcherPusher({
        rpc: this.rpc,
        transport: this.transport,
        rpcDeadlineMs: config.rpc.timeout_ms,
        managedSets,
      });
    }
  }

  /** The node's dispatcher as it lists it (discovery, status): dispatcher.list or OpenSIPS ds_list. */
  readList(): Promise<DispatcherListResult> {
    if (this.pusher instanceof OpenSipsDispatcherPusher) return this.pusher.readList();
    return fetchDispatcherList(this.rpc);
  }

  get name(): string {
    return this.config.name;
  }

  describe(): string {
    return this.pusher.describe();
  }

  /** Weight (0 = inactive) of each backend id as this node holds it since the last good push; null before. */
  get pushedWeights(): ReadonlyMap<string, number> | null {
    return this.pushed;
  }

  /** `force`: read the LB even if nothing changed since the last verified push (reconcile, retries). */
  async apply(desired: NodeDesired, force: boolean): Promise<ApplyResult<NodeOutcome>> {
    // Kamailio's algorithm 11 deals from a table of 100 slots: written as slots, exactly the shares
    // the scorer chose (rweight-slots.ts). OpenSIPS draws by the weights themselves.
    const destinations =
      this.config.kind === 'opensips' ? desired.destinations : asKamailioSlots(desired.destinations);
    const list = JSON.stringify(destinations);
    const push = await this.pusher.push(destinations, { force });
    if (push.kind === 'failed') {
      const result: NodeOutcome = {
        push,
        admission: { kind: 'failed', reason: 'not tried: push failed' },
        driftRepaired: false,
      };
      return { ok: false, result, reason: `${push.stage}: ${push.reason}` };
    }
    const driftRepaired = isDriftRepair(push.kind, list, this.lastGoodList);
    this.lastGoodList = list;
    this.pushed = new Map(destinations.map((d) => [d.duid, d.state === 'active' ? d.rweight : 0] as const));
    const admission = await this.applyAdmission(desired.admission, force);
    const result: NodeOutcome = { push, admission, driftRepaired };
    if (admission.kind === 'failed') return { ok: false, result, reason: `admission: ${admission.reason}` };
    return { ok: true, result };
  }

  private async applyAdmission(desired: AdmissionDesired, force: boolean): Promise<AdmissionOutcome> {
    if (desired.kind === 'off') return this.liftLimits(desired.sets, force);
    this.offConfirmed = null;
    const limits = desired.limits;
    if (limits.size === 0) return { kind: 'in_sync' };
    try {
      const wanted = new Map([...limits].map(([set, limit]) => [admissionLimiterName(set), limit] as const));
      const plan = limiterChanges(wanted, await readLimiters(this.admissionRpc));
      if (plan.missing.length > 0) return { kind: 'missing', sets: plan.missing.map(setOf) };
      for (const c of plan.changes) await setLimiter(this.admissionRpc, c.limiter, c.limitCps);
      if (plan.changes.length === 0) return { kind: 'in_sync' };
      return {
        kind: 'applied',
        limits: plan.changes.map((c) => ({ set: setOf(c.limiter), limitCps: c.limitCps })),
      };
    } catch (e) {
      // No htable RPC at all: the same as limiters missing, a config matter rather than a failure to retry.
      if (e instanceof RpcMethodError && /not found/i.test(e.rpcMessage)) {
        return { kind: 'missing', sets: [...limits.keys()] };
      }
      return { kind: 'failed', reason: (e as Error).message };
    }
  }

  /**
   * Admission off: every limiter of `sets` the LB has is set to no limit. Read once per switch to
   * off (and on a forced apply: a reconcile, a retry), not every cycle: only the controller sets them.
   */
  private async liftLimits(sets: readonly number[], force: boolean): Promise<AdmissionOutcome> {
    const key = JSON.stringify(sets);
    if (!mustReadLiftedLimits(this.offConfirmed, key, force)) return { kind: 'off' };
    try {
      const wanted = new Map(sets.map((set) => [admissionLimiterName(set), null] as const));
      // A set without a limiter is one the LB does no admission for: nothing to lift there.
      const plan = limiterChanges(wanted, await readLimiters(this.admissionRpc));
      for (const c of plan.changes) await setLimiter(this.admissionRpc, c.limiter, null);
      this.offConfirmed = key;
      if (plan.changes.length === 0) return { kind: 'off' };
      return { kind: 'cleared', sets: plan.changes.map((c) => setOf(c.limiter)) };
    } catch (e) {
      if (e instanceof RpcMethodError && /not found/i.test(e.rpcMessage)) {
        this.offConfirmed = key;
        return { kind: 'off' };
      }
      return { kind: 'failed', reason: (e as Error).message };
    }
  }

  async close(): Promise<void> {
    await this.transport.close();
    for (const t of this.extraTransports) await t.close();
    this.mi?.close();
    this.rpc.close();
  }
}

/** The set of a limiter this module named itself. */
const setOf = (limiter: string): number => setIdOfLimiter(limiter) ?? -1;
