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
  setLimiter,
  type LimitCps,
} from '../kamailio/admission.js';
import { DispatcherPusher, type PushOutcome } from './pusher.js';
import type { Destination } from '../kamailio/dispatcher-list.js';
import type { ListFileTransport } from './transports/transport.js';
import { LocalListFile } from './transports/local-file.js';
import type { ApplyResult } from './node-sync.js';
import { KamailioRpcClient, RpcMethodError } from '../kamailio/rpc.js';
import { SftpListFile } from './transports/sftp.js';

export interface NodeDesired {
  readonly destinations: readonly Destination[];
  /** Limit on new calls/s per dispatcher set at this node; empty when admission control is off. */
  readonly admission: ReadonlyMap<number, LimitCps>;
}

/** A limit written to a set's limiter at an LB. */
export interface AppliedLimit {
  readonly limiter: string;
  readonly limitCps: LimitCps;
}

export type AdmissionOutcome =
  | { readonly kind: 'off' }
  | { readonly kind: 'in_sync' }
  | {
      readonly kind: 'applied';
      readonly limiters: readonly AppliedLimit[];
      /** TODO(merge): remove alias (the controller still reads `pipes`). */
      readonly pipes: readonly AppliedLimit[];
    }
  /** The LB has no such limiter: its config does not enable SIPWEIGH_ADMISSION_CONTROL (lb.cfg: SW_ADMISSION). */
  | {
      readonly kind: 'missing';
      readonly limiters: readonly string[];
      /** TODO(merge): remove alias (the controller still reads `pipes`). */
      readonly pipes: readonly string[];
    }
  | { readonly kind: 'failed'; readonly reason: string };

const missing = (limiters: readonly string[]): AdmissionOutcome => ({
  kind: 'missing',
  limiters,
  pipes: limiters,
});

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

function transportFor(cfg: LbNodeConfig): ListFileTransport {
  const list = cfg.dispatcher_list;
  if (!list.sftp) return new LocalListFile({ path: list.path });
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
    path: list.path,
  });
}

export class NodeLink {
  readonly rpc: KamailioRpcClient;
  private readonly transport: ListFileTransport;
  private readonly pusher: DispatcherPusher;
  /** The desired list of the last successful push (to tell drift from a change of our own). */
  private lastGoodList: string | null = null;
  private pushed: ReadonlyMap<string, number> | null = null;

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
    this.pusher = new DispatcherPusher({
      rpc: this.rpc,
      transport: this.transport,
      rpcDeadlineMs: config.rpc.timeout_ms,
      managedSets,
    });
  }

  get name(): string {
    return this.config.name;
  }

  describe(): string {
    return this.pusher.describe();
  }

  /** `force`: read the LB even if nothing changed since the last verified push (reconcile, retries). */
  /** Weight (0 = inactive) of each backend id as this node holds it since the last good push; null before. */
  get pushedWeights(): ReadonlyMap<string, number> | null {
    return this.pushed;
  }

  async apply(desired: NodeDesired, force: boolean): Promise<ApplyResult<NodeOutcome>> {
    const list = JSON.stringify(desired.destinations);
    const push = await this.pusher.push(desired.destinations, { force });
    if (push.kind === 'failed') {
      const result: NodeOutcome = {
        push,
        admission: { kind: 'failed', reason: 'not tried: push failed' },
        driftRepaired: false,
      };
      return { ok: false, result, reason: `${push.stage}: ${push.reason}` };
    }
    const driftRepaired = push.kind === 'applied' && list === this.lastGoodList;
    this.lastGoodList = list;
    this.pushed = new Map(
      desired.destinations.map((d) => [d.duid, d.state === 'active' ? d.rweight : 0] as const),
    );
    const admission = await this.applyAdmission(desired.admission);
    const result: NodeOutcome = { push, admission, driftRepaired };
    if (admission.kind === 'failed') return { ok: false, result, reason: `admission: ${admission.reason}` };
    return { ok: true, result };
  }

  private async applyAdmission(limits: ReadonlyMap<number, LimitCps>): Promise<AdmissionOutcome> {
    if (limits.size === 0) return { kind: 'off' };
    try {
      const desired = new Map([...limits].map(([set, limit]) => [admissionLimiterName(set), limit] as const));
      const plan = limiterChanges(desired, await readLimiters(this.rpc));
      if (plan.missing.length > 0) return missing(plan.missing);
      for (const c of plan.changes) await setLimiter(this.rpc, c.limiter, c.limitCps);
      if (plan.changes.length === 0) return { kind: 'in_sync' };
      const limiters = plan.changes.map((c) => ({ limiter: c.limiter, limitCps: c.limitCps }));
      return { kind: 'applied', limiters, pipes: limiters };
    } catch (e) {
      // No htable RPC at all: the same as limiters missing, a config matter rather than a failure to retry.
      if (e instanceof RpcMethodError && /not found/i.test(e.rpcMessage)) {
        return missing([...limits.keys()].map(admissionLimiterName));
      }
      return { kind: 'failed', reason: (e as Error).message };
    }
  }

  async close(): Promise<void> {
    await this.transport.close();
    this.rpc.close();
  }
}
