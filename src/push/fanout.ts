/**
 * One NodeSync per LB node behind one `submit`: every node converges on its own, so a node that is
 * down (backing off) neither delays nor fails the others, and each keeps its own last outcome.
 */
import {
  NodeSync,
  type Applier,
  type NodeSyncOptions,
  type NodeSyncStatus,
  type SubmitOptions,
} from './node-sync.js';

export interface FanoutNode<T, R> {
  readonly name: string;
  readonly apply: Applier<T, R>;
}

export type FanoutOptions<T, R> = Omit<NodeSyncOptions<T, R>, 'node' | 'apply'>;

export class NodeSyncFanout<T, R> {
  private readonly syncs: ReadonlyMap<string, NodeSync<T, R>>;

  constructor(nodes: readonly FanoutNode<T, R>[], options: FanoutOptions<T, R> = {}) {
    const syncs = new Map<string, NodeSync<T, R>>();
    for (const n of nodes) {
      if (syncs.has(n.name)) throw new Error(`LB node ${JSON.stringify(n.name)} is listed twice`);
      syncs.set(n.name, new NodeSync({ ...options, node: n.name, apply: n.apply }));
    }
    this.syncs = syncs;
  }

  /** The same desired state to every node. */
  submit(desired: T, options: SubmitOptions = {}): void {
    for (const s of this.syncs.values()) s.submit(desired, options);
  }

  /** One node only (e.g. a per-node admission limit); false when no node has that name. */
  submitTo(node: string, desired: T, options: SubmitOptions = {}): boolean {
    const s = this.syncs.get(node);
    s?.submit(desired, options);
    return s !== undefined;
  }

  /** One node's status; undefined when no node has that name. */
  statusOf(node: string): NodeSyncStatus<R> | undefined {
    return this.syncs.get(node)?.status();
  }

  async close(): Promise<void> {
    await Promise.all([...this.syncs.values()].map((s) => s.close()));
  }
}
