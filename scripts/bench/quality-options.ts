/**
 * Options of `npm run bench -- quality`, pure: the pool, the steps, the capacity-drop variant and the
 * reduced `--quick` run.
 */
import { POLICIES, type PolicyId } from './quality-types.js';

export interface DropOptions {
  /** Index of the backend whose capacity halves (default the largest). */
  readonly backend: number;
  /** Offered load, as a fraction of the total capacity before the drop. */
  readonly loadFraction: number;
  /** Seconds of load before the drop, and after it. */
  readonly beforeS: number;
  readonly afterS: number;
}

export interface QualityOptions {
  readonly quick: boolean;
  readonly policies: readonly PolicyId[];
  /** Emulated capacity per backend, calls/s (default 1:2:4). */
  readonly capacities: readonly number[];
  /** UDP workers of each emulated backend: service delay = workers / capacity. */
  readonly workers: number;
  /** Offered loads as fractions of the total capacity, ascending; > 1 are the overload steps. */
  readonly steps: readonly number[];
  /** Seconds of load before a step's window opens (not measured), and the window's length. */
  readonly warmupS: number;
  readonly windowS: number;
  /** The window of overload steps (> 100 %): long enough for a backlog to exceed the receive timeout. */
  readonly overloadWindowS: number;
  /** A call without its final reply after this long is failed (sipp -recv_timeout). */
  readonly recvTimeoutMs: number;
  /** null: not run. */
  readonly drop: DropOptions | null;
  /** Second octet of the labs' loopback addresses (127.N.x.x). */
  readonly net: number;
  /** Where the run's JSON, BENCHMARKS.md and the plots go (relative to the package root). */
  readonly outDir: string;
  /** Re-report a stored run instead of measuring. */
  readonly reportOnly: string | undefined;
}

export const FULL_STEPS = [0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.1, 1.3] as const;
export const QUICK_STEPS = [0.6, 0.9, 1.3] as const;

function value(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`${name}: expects a value`);
  return v;
}

function numbers(raw: string, name: string, min: number, max: number): number[] {
  const list = raw.split(',').map((s) => Number(s.trim()));
  if (list.length === 0 || list.some((n) => !Number.isFinite(n) || n < min || n > max)) {
    throw new Error(`${name}: expected comma-separated numbers ${min}..${max}, got ${raw}`);
  }
  return list;
}

const FLAGS = new Set(['--quick', '--no-drop']);
const WITH_VALUE = new Set([
  '--policies',
  '--capacity',
  '--workers',
  '--steps',
  '--window',
  '--report',
  '--net',
]);

export function parseQualityOptions(args: readonly string[]): QualityOptions {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (WITH_VALUE.has(a)) i++;
    else if (!FLAGS.has(a)) throw new Error(`unknown option ${a}`);
  }
  const quick = args.includes('--quick');
  const rawPolicies = value(args, '--policies');
  const policies = rawPolicies === undefined ? [...POLICIES] : rawPolicies.split(',');
  for (const p of policies) {
    if (!(POLICIES as readonly string[]).includes(p)) {
      throw new Error(`--policies: unknown policy ${p} (known: ${POLICIES.join(', ')})`);
    }
  }
  const rawCaps = value(args, '--capacity');
  const capacities = rawCaps === undefined ? [25, 50, 100] : numbers(rawCaps, '--capacity', 1, 1000);
  const rawSteps = value(args, '--steps');
  const steps = (
    rawSteps === undefined ? [...(quick ? QUICK_STEPS : FULL_STEPS)] : numbers(rawSteps, '--steps', 0.05, 3)
  ).sort((a, b) => a - b);
  const workers = Number(value(args, '--workers') ?? 2);
  if (!Number.isInteger(workers) || workers < 1 || workers > 16) throw new Error('--workers: expected 1..16');
  const windowS = Number(value(args, '--window') ?? (quick ? 2 : 12));
  if (!Number.isFinite(windowS) || windowS < 1 || windowS > 600)
    throw new Error('--window: expected 1..600 s');
  const net = Number(value(args, '--net') ?? 17);
  if (!Number.isInteger(net) || net < 1 || net > 254) throw new Error('--net: expected 1..254');
  const largest = capacities.indexOf(Math.max(...capacities));
  return {
    quick,
    policies: policies as PolicyId[],
    capacities,
    workers,
    steps,
    warmupS: quick ? 1 : 4,
    windowS,
    overloadWindowS: quick ? windowS : Math.max(windowS, 30),
    // A call without its 200 by then has failed for any caller (and the headline asks 200 ms).
    recvTimeoutMs: quick ? 2000 : 5000,
    drop:
      quick || args.includes('--no-drop')
        ? null
        : { backend: largest, loadFraction: 0.6, beforeS: 20, afterS: 30 },
    net,
    outDir: '.',
    reportOnly: value(args, '--report'),
  };
}
