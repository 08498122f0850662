/**
 * How the pool's admission limit is split over the LB nodes (issue 16; docs/cluster.md), pure.
 *
 * Each node enforces its own limiter on the calls it sees, so the pool's limit L must be cut in
 * per-node parts that sum to at most L. An even cut halves the active node's limit in an
 * active/standby pair, and misallocates it whenever traffic is uneven. By demand:
 *
 *   part_i = floor + (1 - N * floor) * d_i / sum(d)
 *
 * with d_i the calls/s node i was offered (admitted + refused) over the recent window. Offered, not
 * admitted: a node held at its part admits exactly its part, and splitting by that would keep the
 * split where it is forever. The floor keeps an idle node's limiter open (a failover or a DNS
 * switch does not start from zero; the next split then follows the moved traffic). With no demand
 * anywhere, or none known, the split is even: nothing says otherwise.
 *
 * Parts are whole steps of the pool (1 % by default), handed out by largest remainder: they sum to
 * exactly 1, and a demand that jitters inside a step does not rewrite every limiter every cycle.
 * Ties go by node name, so two controllers seeing the same demands make the same split.
 */

export type SplitBy = 'demand' | 'even';

export interface SplitParams {
  readonly by: SplitBy;
  /** Fraction of the pool's limit each node keeps at least, 0..1/N (a larger one is cut to 1/N). */
  readonly floor: number;
  /** Granularity of a part, fraction of the pool (0.01: whole percents). */
  readonly step: number;
}

export const DEFAULT_SPLIT: SplitParams = { by: 'demand', floor: 0.05, step: 0.01 };

/**
 * A split in force moves when a part is this far from what the demand says: 4 % of the pool. At
 * 20 calls/s over 2 s the 20 % side's share jitters by about ±3 % (Poisson), so 4 % holds still;
 * the held split is then within 4 % of the target, inside the 10 % issue 16 asks for.
 */
export const SPLIT_HYSTERESIS = 0.04;

export interface NodeDemand {
  readonly node: string;
  /** Calls/s offered to the node lately; null: not known now. */
  readonly demandCps: number | null;
  /**
   * Its demand was known once (and went stale: the node cannot be read any more, it died). A node
   * never read at all is another case: it may be serving calls (a peer whose credentials are wrong),
   * so it is counted as busy as the busiest known node, never as idle.
   */
  readonly seen: boolean;
}

/** Each node's fraction of the pool's limit, in `nodes` order; the fractions sum to 1. */
export function splitFractions(nodes: readonly NodeDemand[], p: SplitParams): Map<string, number> {
  const n = nodes.length;
  const out = new Map<string, number>();
  if (n === 0) return out;
  const known = nodes.flatMap((d) => (d.demandCps !== null && d.demandCps > 0 ? [d.demandCps] : []));
  const busiest = Math.max(0, ...known);
  const demands = nodes.map((d) => (d.demandCps !== null ? Math.max(0, d.demandCps) : d.seen ? 0 : busiest));
  const total = demands.reduce((a, b) => a + b, 0);
  const even = p.by === 'even' || !(total > 0);
  // Whole steps: a floor finer than a step would be rounded away by the largest remainder.
  const floor = Math.min(Math.ceil(Math.max(0, p.floor) / p.step - 1e-9) * p.step, 1 / n);
  const ideal = demands.map((d) => (even ? 1 / n : floor + (1 - n * floor) * (d / total)));
  const units = Math.max(n, Math.round(1 / p.step));
  const parts = largestRemainder(
    ideal.map((f) => f * units),
    units,
    nodes.map((d) => d.node),
  );
  nodes.forEach((d, i) => out.set(d.node, (parts[i] ?? 0) / units));
  return out;
}

/** Whole numbers summing to `total`, each the floor of its ideal plus one for the largest remainders. */
function largestRemainder(ideal: readonly number[], total: number, names: readonly string[]): number[] {
  // Floors never sum above the total (each floor <= its ideal, the ideals sum to the total).
  const whole = ideal.map((x) => Math.floor(x));
  let left = total - whole.reduce((a, b) => a + b, 0);
  const order = ideal
    .map((x, i) => ({ i, rem: x - (whole[i] ?? 0) }))
    .sort((a, b) => b.rem - a.rem || cmp(names[a.i] ?? '', names[b.i] ?? ''));
  for (const { i } of order) {
    if (left <= 0) break;
    whole[i] = (whole[i] ?? 0) + 1;
    left--;
  }
  return whole;
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Offered rates over two seconds jitter by several percent (Poisson: 1/sqrt(n)): a split redone
 * from each reading would move by a step or two nearly every cycle, rewriting every node's limiter
 * and telling it each time. So the split in force stays until some node's part is at least
 * `hysteresis` away from what the demand now says (or the nodes changed).
 */
export function stickySplit(
  current: ReadonlyMap<string, number> | null,
  next: ReadonlyMap<string, number>,
  hysteresis: number,
): ReadonlyMap<string, number> {
  if (current === null || current.size !== next.size) return next;
  for (const [node, f] of next) {
    const held = current.get(node);
    if (held === undefined || Math.abs(f - held) >= hysteresis - 1e-9) return next;
  }
  return current;
}

/**
 * A controller beside each LB node computes the split from its own readings of every node's
 * counters, taken at other instants than the other controllers take theirs, and holds it against
 * jitter (stickySplit) from its own history: two controllers' held splits can differ by up to the
 * hysteresis each, plus a step of rounding. The parts they push could then sum above the pool's
 * limit. So each such controller holds its own nodes `margin` below what it holds (the hysteresis
 * plus a step): N controllers' parts then sum to at most the limit. A controller that pushes to
 * every node (no peers) needs no margin.
 */
export function withPeerMargin(
  fractions: ReadonlyMap<string, number>,
  own: ReadonlySet<string>,
  peers: number,
  margin: number,
): Map<string, number> {
  const cut = peers > 0 ? margin : 0;
  return new Map(
    [...fractions].map(([node, f]) => [node, own.has(node) && cut > 0 ? Math.max(0, round(f - cut)) : f]),
  );
}

const round = (x: number): number => Math.round(x * 1e9) / 1e9;
