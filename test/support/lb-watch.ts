/**
 * Watches an LB's dispatcher the way an operator would: polls `dispatcher.list` and keeps a timeline
 * of each destination's effective weight (0 when not active). The closed-loop tests judge the
 * controller only by what the LB actually holds.
 */
import { fetchEffectiveWeights } from '../../src/kamailio/fetch-dispatcher-list.js';
import { KamailioRpcClient } from '../../src/kamailio/rpc.js';
import type { RunningLab } from '../../src/lab/lab.js';
import { LAB_SCENARIOS } from '../../src/lab/scenarios.js';
import { startSipp, type SippRun } from '../../src/lab/sipp.js';
import { labClient } from '../../src/lab/topology.js';

export interface WeightSample {
  /** Date.now() of the reading. */
  readonly at: number;
  /** Backend id (duid) -> rweight when active, 0 otherwise. */
  readonly weights: ReadonlyMap<string, number>;
}

export function labRpc(lab: RunningLab): KamailioRpcClient {
  const { rpc } = lab.state.plan.lb;
  return new KamailioRpcClient({ url: lab.state.lb_rpc_url, username: rpc.username, password: rpc.password });
}

export function readWeights(rpc: KamailioRpcClient): Promise<Map<string, number> | null> {
  return fetchEffectiveWeights(rpc, { deadlineMs: 2000 });
}

/** Where a watcher reads weights: a Kamailio LB's JSON-RPC, or any reader (an OpenSIPS LB's MI ds_list). */
export type WeightSource = KamailioRpcClient | (() => Promise<Map<string, number> | null>);

export class WeightWatcher {
  readonly samples: WeightSample[] = [];
  private timer: NodeJS.Timeout | null = null;
  private busy = false;

  constructor(
    private readonly rpc: WeightSource,
    private readonly everyMs = 100,
  ) {}

  start(): this {
    this.timer = setInterval(() => {
      if (this.busy) return;
      this.busy = true;
      (typeof this.rpc === 'function' ? this.rpc() : readWeights(this.rpc))
        .then((w) => {
          if (w) this.samples.push({ at: Date.now(), weights: w });
        })
        .catch(() => undefined)
        .finally(() => {
          this.busy = false;
        });
    }, this.everyMs);
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** First sample at or after `from` where `pred` holds (its time), or null. */
  firstAfter(from: number, pred: (w: ReadonlyMap<string, number>) => boolean): number | null {
    return this.samples.find((s) => s.at >= from && pred(s.weights))?.at ?? null;
  }

  between(from: number, to: number): WeightSample[] {
    return this.samples.filter((s) => s.at >= from && s.at <= to);
  }
}

/** Largest relative deviation of the weights' ratios from the capacities' ratios (0.1 = 10 %). */
export function ratioError(
  weights: ReadonlyMap<string, number>,
  capacities: ReadonlyMap<string, number>,
): number {
  const ids = [...capacities.keys()];
  const wSum = ids.reduce((a, id) => a + (weights.get(id) ?? 0), 0);
  const cSum = ids.reduce((a, id) => a + (capacities.get(id) ?? 0), 0);
  if (wSum === 0) return Infinity;
  return Math.max(
    ...ids.map((id) => {
      const want = (capacities.get(id) ?? 0) / cSum;
      return Math.abs((weights.get(id) ?? 0) / wSum - want) / want;
    }),
  );
}

export function formatWeights(w: ReadonlyMap<string, number>): string {
  return [...w]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([id, v]) => `${id}=${v}`)
    .join(' ');
}

/** Steady calls through the lab's LB from its client address: `rate` calls/s for `seconds`, bounded. */
export function labLoad(lab: RunningLab, name: string, rate: number, seconds: number): Promise<SippRun> {
  const { plan } = lab.state;
  return startSipp(lab.group, {
    name,
    scenario: LAB_SCENARIOS.uac,
    ...labClient(plan),
    rate,
    maxCalls: rate * seconds,
    timeoutS: seconds + 30,
  });
}
