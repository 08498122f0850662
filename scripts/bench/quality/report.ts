/**
 * The quality benchmark for people: a terminal line per step as the run goes, a final summary, and
 * the Markdown section of BENCHMARKS.md (pure string builders), plus the one writer that puts that
 * section into the file without touching the other benchmarks' sections.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import {
  capacitySpread,
  dropSpreads,
  fairShareAfter,
  goals,
  loadKey,
  medianSteps,
  missReasons,
  overloadGoodput,
  overloadVerdicts,
  poolOf,
  qualitySummary,
  repOf,
  scenariosRun,
  scenarioSteps,
  settleSpreads,
  verdictsByRep,
  type Criteria,
  type GoalResult,
  type MedianStep,
  type Spread,
  type TimeSpread,
} from './analysis.js';
import {
  POLICIES,
  POLICY_LABELS,
  SCENARIO_LABELS,
  type DropResult,
  SHEDS_WITHOUT_WEIGHTS,
  type PolicyId,
  type QualityRun,
  type ScenarioId,
  type SettleResult,
  type StepResult,
} from './types.js';
import { checkQualityRun, readQualityRun } from './run-file.js';

// --- number formats ------------------------------------------------------------------------------

/** Calls/s: one decimal (steps are 20 s windows; a tenth is a couple of calls). */
const cps = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : 'n/a');
/** Percent: two decimals below 1 % (the criterion sits at 1 %), one above. */
function pct(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  if (n === 0) return '0';
  return n < 1 ? n.toFixed(2) : n.toFixed(1);
}
/** Milliseconds: one decimal below 10 ms, whole above. */
function ms(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return 'n/a';
  return n < 10 ? n.toFixed(1) : n.toFixed(0);
}
const frac = (n: number) => n.toFixed(2);
const loadPct = (loadFraction: number) => `${Math.round(loadFraction * 100)} %`;
const share = (n: number | undefined) =>
  n === undefined || !Number.isFinite(n) ? 'n/a' : `${(n * 100).toFixed(0)} %`;
const refusedPct = (s: StepResult) => (s.calls > 0 ? (s.refused_503 / s.calls) * 100 : Number.NaN);
const pad = (s: string, n: number) => s.padEnd(n);
const lpad = (s: string, n: number) => s.padStart(n);

/** Backends in the pool's order, then any others a step reports (a misnamed one shows, not vanishes). */
function backendsOf(run: QualityRun): string[] {
  const extra = new Set<string>();
  for (const s of run.steps) for (const b of Object.keys(s.shares)) extra.add(b);
  for (const d of run.capacity_drop)
    for (const t of d.timeline) for (const b of Object.keys(t.weights)) extra.add(b);
  for (const b of run.pool.backends) extra.delete(b);
  return [...run.pool.backends, ...[...extra].sort()];
}

// --- terminal ------------------------------------------------------------------------------------

/** The column heads matching formatStepLine. */
export function formatStepHeader(): string {
  return (
    `${pad('policy', 16)} ${lpad('load', 5)} ${lpad('offered/s', 9)} ${lpad('ok/s', 7)} ${lpad('failed', 7)} ` +
    `${lpad('503', 6)} ${lpad('p50', 6)} ${lpad('p95', 6)} ${lpad('p99 ms', 7)}  shares  verdict`
  );
}

/** One step as the run goes: fits a terminal line, says whether the step counts as carried and why not. */
export function formatStepLine(step: StepResult, criteria: Criteria): string {
  const l = step.setup_ms;
  const shares = Object.entries(step.shares)
    .map(([b, v]) => `${b} ${share(v)}`)
    .join(', ');
  const reasons = missReasons(step, criteria);
  const verdict = reasons.length === 0 ? 'carried' : `missed: ${reasons.join('; ')}`;
  return (
    `${pad(step.policy, 16)} ${lpad(loadPct(step.load_fraction), 5)} ${lpad(cps(step.offered_cps), 9)} ` +
    `${lpad(cps(step.success_cps), 7)} ${lpad(`${pct(step.failed_pct)} %`, 7)} ${lpad(`${pct(refusedPct(step))} %`, 6)} ` +
    `${lpad(ms(l?.p50), 6)} ${lpad(ms(l?.p95), 6)} ${lpad(ms(l?.p99), 7)}  ${shares}  ${verdict}`
  );
}

/** A ladder's settle phase as the run goes: measured, not scored. */
export function formatSettleLine(s: SettleResult): string {
  const refused = s.calls > 0 ? (s.refused_503 / s.calls) * 100 : Number.NaN;
  return (
    `${pad(s.policy, 16)} settle ${loadPct(s.load_fraction)} (${cps(s.offered_cps)} calls/s, ${s.duration_s.toFixed(0)} s): ` +
    `${s.calls} calls, failed ${pct(s.failed_pct)} %, 503 ${pct(refused)} %, p99 ${ms(s.p99_ms)} ms  (not scored)`
  );
}

function goalMark(g: GoalResult): string {
  return g.met === null ? 'not judged' : g.met ? 'met' : 'NOT met';
}

/** A run of the capacity-drop runs only (`--no-ladders`): no pool had a ladder. */
export const noLadders = (run: QualityRun): boolean =>
  run.scenarios !== undefined && run.scenarios.length === 0;

/** The final terminal summary: the headline per policy, the goals, overload goodput, the drop. */
export function formatSummary(run: QualityRun): string {
  const lines: string[] = [];
  for (const scenario of scenariosRun(run)) {
    lines.push(
      '',
      `capacity fraction, ${SCENARIO_LABELS[scenario]} (${ruleShort(run.criteria)}; median of ${run.reps ?? 1}` +
        `${(run.sipweigh_learns_on ?? []).includes(scenario) ? '; sipweigh learning capacities' : ''}):`,
    );
    for (const p of POLICIES) {
      const byRep = verdictsByRep(run, scenario, p);
      const sp = capacitySpread(run, scenario, p);
      if (!sp) continue;
      const range = sp.n > 1 ? ` (${frac(sp.min)}–${frac(sp.max)})` : '';
      const misses = byRep
        .flatMap(({ rep, verdict: v }) =>
          v.firstMiss
            ? [
                `${byRep.length > 1 ? `r${rep} ` : ''}first miss at ${loadPct(v.firstMiss.load_fraction)}: ${v.firstMiss.reasons.join('; ')}`,
              ]
            : [],
        )
        .join('; ');
      lines.push(`  ${pad(p, 16)} ${frac(sp.median)}${range}${misses ? `  ${misses}` : ''}`);
    }
    const note = poolOf(run, scenario).note;
    if (note) lines.push(`  (${note})`);
  }
  const settle = settleSpreads(run);
  if (settle.length > 0) {
    lines.push('settle phase before each ladder (not scored; median failed %, p99 setup):');
    for (const x of settle) {
      lines.push(
        `  ${pad(x.scenario, 8)} ${pad(x.policy, 16)} failed ${spreadText(x.failed_pct, pct)} %, ` +
          `p99 ${x.p99_ms ? spreadText(x.p99_ms, ms) : 'n/a'} ms`,
      );
    }
  }
  if (!noLadders(run)) {
    lines.push('sipweigh against the goals:');
    for (const g of goals(run)) lines.push(`  ${pad(g.goal, 28)} ${pad(goalMark(g), 10)} ${g.detail}`);
  }
  const over = overloadGoodput(run);
  const overKeys = overloadKeys(run);
  if (overKeys.length > 0) {
    lines.push(`overload goodput, calls/s (capacity ${cps(run.pool.total_cps)}):`);
    for (const p of POLICIES) {
      const o = over[p];
      if (!o) continue;
      lines.push(
        `  ${pad(p, 16)} ${overKeys.map((k) => `${loadPct(Number(k))}: ${o[k] === undefined ? 'n/a' : cps(o[k])}`).join('  ')}`,
      );
    }
  }
  const ov = Object.entries(overloadVerdicts(run));
  if (ov.length > 0)
    lines.push('top overload step (goodput ≥ 0.9 of the real capacity with 0 admitted calls failed?):');
  for (const [p, v] of ov) {
    lines.push(
      `  ${pad(p, 16)} at ${loadPct(v.load_fraction)}: goodput ${spreadText(v.goodput_fraction, frac)} of capacity, ` +
        `admitted calls failed ${spreadText(v.admitted_failed, (n) => String(Math.round(n)))}`,
    );
  }
  if (run.capacity_drop.length > 0) {
    lines.push(
      `capacity drop (weights follow within; back after the recovery; medians` +
        `${(run.sipweigh_learns_on ?? []).includes('drop') ? '; sipweigh learning capacities' : ''}):`,
    );
    for (const d of dropSpreads(run)) {
      lines.push(
        `  ${pad(d.policy, 16)} ${pad(followText(d.policy, d.follow_s), 8)} back ${pad(d.follow_back_s && !SHEDS_WITHOUT_WEIGHTS.includes(d.policy) ? timeText(d.follow_back_s) : 'n/a', 8)} ` +
          `failed ${pct(d.failed_before_pct.median)} % → ${pct(d.failed_after_pct.median)} % while halved` +
          (d.failed_recovered_pct ? ` → ${pct(d.failed_recovered_pct.median)} % after the recovery` : ''),
      );
    }
  }
  return lines.join('\n');
}

/** "0.85" or "0.85 (0.80–0.90)" over several repetitions. */
function spreadText(sp: Spread, f: (n: number) => string): string {
  return sp.n > 1 && sp.min !== sp.max ? `${f(sp.median)} (${f(sp.min)}–${f(sp.max)})` : f(sp.median);
}

function followText(policy: PolicyId, t: TimeSpread): string {
  return SHEDS_WITHOUT_WEIGHTS.includes(policy) ? 'n/a (alg 64)' : timeText(t);
}

/** A follow time over the repetitions: "4.0 s", "4.0 s (3.0–6.0 s)", "never", "4.0 s (1 of 3 never)". */
function timeText(t: TimeSpread): string {
  if (t.median === null) return t.n > 1 && t.misses < t.n ? `never (${t.misses} of ${t.n})` : 'never';
  const range =
    t.n > 1 && t.min !== null && t.max !== null && t.min !== t.max
      ? ` (${t.min.toFixed(1)}–${t.max.toFixed(1)} s)`
      : '';
  const misses = t.misses > 0 ? `, ${t.misses} of ${t.n} never` : '';
  return `${t.median.toFixed(1)} s${range}${misses}`;
}

// --- Markdown ------------------------------------------------------------------------------------

/** Relative links (from BENCHMARKS.md) to the plots that were written; absent plots are not linked. */
export interface PlotLinks {
  readonly latency?: string;
  readonly goodput?: string;
  readonly dropWeights?: string;
  readonly scenarios?: string;
}

function ruleShort(c: Criteria): string {
  return `carried = failed < ${c.max_failed_pct} % and p99 setup < ${c.max_p99_ms} ms`;
}

/** Markdown table cells cannot hold a bare `|` or a newline. */
function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function row(cells: readonly string[]): string {
  return `| ${cells.map(cell).join(' | ')} |`;
}

function table(
  head: readonly string[],
  rows: readonly (readonly string[])[],
  align?: readonly ('l' | 'r')[],
): string[] {
  const sep = head.map((_, i) => ((align?.[i] ?? 'r') === 'l' ? '---' : '---:'));
  return [row(head), `|${sep.join('|')}|`, ...rows.map(row)];
}

function overloadKeys(run: QualityRun): string[] {
  const keys = new Set(run.steps.filter((s) => s.load_fraction > 1).map((s) => loadKey(s.load_fraction)));
  return [...keys].sort((a, b) => Number(a) - Number(b));
}

function sortedDrops(run: QualityRun): DropResult[] {
  return [...run.capacity_drop].sort((a, b) => POLICIES.indexOf(a.policy) - POLICIES.indexOf(b.policy));
}

function machineLines(run: QualityRun): string[] {
  const m = run.machine;
  return table(
    ['machine', ''],
    [
      ['CPUs', `${m.cpus} × ${m.cpu_model}`],
      ['kernel', m.kernel],
      ['Node.js', m.node],
      ['Kamailio', m.kamailio],
      ...(m.kamailio_oc_lb !== undefined && run.policies.includes('kamailio_oc')
        ? [["Kamailio of kamailio_oc's LB", m.kamailio_oc_lb]]
        : []),
      ...(run.oc_target !== undefined
        ? [["kamailio_oc's servers' target utilisation (--oc-target)", run.oc_target.toFixed(2)]]
        : []),
      ['SIPp', m.sipp],
      ['load average at start (1 min)', `${m.loadavg_start.toFixed(2)} (on ${m.cpus} CPUs)`],
      ['host', m.hostname],
    ],
    ['l', 'l'],
  );
}

function poolLines(run: QualityRun): string[] {
  const total = run.pool.total_cps;
  const rows = run.pool.backends.map((b, i) => {
    const c = run.pool.capacities_cps[i];
    return [b, c === undefined ? 'n/a' : cps(c), c === undefined || total <= 0 ? 'n/a' : share(c / total)];
  });
  rows.push(['total', cps(total), '100 %']);
  return [
    ...table(['backend', 'capacity, calls/s', 'fair share'], rows, ['l', 'r', 'r']),
    '',
    `Each backend runs ${run.pool.workers} workers with a fixed service delay, so its capacity is set by the ` +
      "emulation, not by this machine's CPU. The fair share is the backend's capacity over the total: what an " +
      'ideal balancer sends it.',
  ];
}

function headlineLines(run: QualityRun, scenario: ScenarioId): string[] {
  const total = poolOf(run, scenario).total_cps;
  const rows = POLICIES.flatMap((p) => {
    const byRep = verdictsByRep(run, scenario, p);
    const sp = capacitySpread(run, scenario, p);
    if (!sp) return [];
    const several = byRep.length > 1;
    const miss = byRep
      .map(({ rep, verdict: v }) => {
        const at = v.firstMiss
          ? `${loadPct(v.firstMiss.load_fraction)}: ${v.firstMiss.reasons.join('; ')}`
          : 'none (every step carried)';
        return several ? `rep ${rep}: ${at}` : at;
      })
      .join('; ');
    const passed = byRep.flatMap(({ rep, verdict: v }) =>
      v.passedAboveMiss.length > 0
        ? [
            `${several ? `rep ${rep} ` : ''}passed above the miss, not counted: ${v.passedAboveMiss.map(loadPct).join(', ')}`,
          ]
        : [],
    );
    const notes = [
      ...passed,
      sp.median > 1 ? 'carried more than the configured capacity (emulation slack)' : '',
    ].filter((x) => x !== '');
    return [
      [
        POLICY_LABELS[p],
        frac(sp.median),
        cps(sp.median * total),
        miss,
        notes.join('; '),
        several ? `${frac(sp.min)}–${frac(sp.max)}` : 'one run',
        sp.values.map(frac).join(', '),
      ],
    ];
  });
  return table(
    [
      'policy',
      'capacity fraction (median)',
      'carried, calls/s',
      'first missed step',
      'note',
      'range',
      'each repetition',
    ],
    rows,
    ['l', 'r', 'r', 'l', 'l', 'r', 'r'],
  );
}

/** Policy by scenario: the median capacity fraction and its range, the adaptivity comparison at a glance. */
function scenarioMatrixLines(run: QualityRun, scenarios: readonly ScenarioId[]): string[] {
  const rows = POLICIES.flatMap((p) => {
    const cells = scenarios.map((id) => {
      const sp = capacitySpread(run, id, p);
      if (sp) return spreadText(sp, frac);
      // Not run on this pool: with every backend configured equal its lab is a known-pool lab (the
      // pool's note): round robin and equal weights read no capacity, capacity weights become equal.
      if (id !== 'unknown' || !poolOf(run, id).note || p === 'kamailio_cc' || p === 'sipweigh')
        return 'not run';
      const twin: PolicyId = p === 'static_capacity' ? 'static_equal' : p;
      const known = capacitySpread(run, 'known', twin);
      const lab = twin === p ? 'its known-pool lab' : "equal static's known-pool lab";
      return known ? `${spreadText(known, frac)} (${lab})` : `not run (${lab})`;
    });
    return cells.every((c) => c === 'not run') ? [] : [[POLICY_LABELS[p], ...cells]];
  });
  return table(['policy', ...scenarios.map((id) => `${SCENARIO_LABELS[id]}: capacity fraction`)], rows, [
    'l',
    ...scenarios.map(() => 'r' as const),
  ]);
}

function scenarioPoolLines(run: QualityRun, scenario: ScenarioId): string[] {
  const pool = poolOf(run, scenario);
  const rows = run.pool.backends.map((b, i) => [
    b,
    cps(pool.capacities_cps[i] ?? Number.NaN),
    cps(pool.configured_cps[i] ?? Number.NaN),
  ]);
  rows.push(['total', cps(pool.total_cps), cps(pool.configured_cps.reduce((a, c) => a + c, 0))]);
  return [
    ...table(['backend', 'real capacity, calls/s', 'configured (agents, controller, capacity list)'], rows, [
      'l',
      'r',
      'r',
    ]),
    '',
    `Offered loads are fractions of the real total (${cps(pool.total_cps)} calls/s).` +
      (pool.note ? ` Policies ${pool.note}.` : ''),
  ];
}

function goalLines(gs: readonly GoalResult[]): string[] {
  return table(
    ['sipweigh goal', 'result', 'figures'],
    gs.map((g) => [g.goal, g.met === null ? 'not judged' : g.met ? '**met**' : '**not met**', g.detail]),
    ['l', 'l', 'l'],
  );
}

function stepTable(
  run: QualityRun,
  policy: PolicyId,
  backends: readonly string[],
  scenario: ScenarioId = 'known',
): string[] {
  const steps: MedianStep[] = medianSteps(
    scenarioSteps(run, scenario).filter((s) => s.policy === policy),
    run.criteria,
  ).sort((a, b) => a.load_fraction - b.load_fraction || a.offered_cps - b.offered_cps);
  const withRange = (m: string, r: readonly [number, number] | null, f: (n: number) => string, n: number) =>
    n > 1 && r !== null && r[0] !== r[1] ? `${m} (${f(r[0])}–${f(r[1])})` : m;
  const head = [
    'offered load',
    'offered calls/s',
    'calls',
    'success calls/s',
    'failed %',
    '503 %',
    'p50 ms',
    'p95 ms',
    'p99 ms',
    ...backends.map((b) => `${b} share`),
    'carried',
  ];
  const rows = steps.map((s) => [
    loadPct(s.load_fraction),
    cps(s.offered_cps),
    String(s.calls),
    withRange(cps(s.success_cps), s.success_cps_range, cps, s.n),
    withRange(pct(s.failed_pct), s.failed_pct_range, pct, s.n),
    pct(refusedPct(s)),
    ms(s.setup_ms?.p50),
    ms(s.setup_ms?.p95),
    withRange(ms(s.setup_ms?.p99), s.p99_ms_range, ms, s.n),
    ...backends.map((b) => share(s.shares[b])),
    s.n > 1 ? `${s.carried} of ${s.n}` : missReasons(s, run.criteria).length === 0 ? 'yes' : 'no',
  ]);
  return table(head, rows);
}

/**
 * The settle phases: per pool and policy, failed % and p99 over the repetitions. Nothing for a run
 * from before the phase existed; one sentence for a run with it off.
 */
function settleLines(run: QualityRun): string[] {
  if (run.settle === undefined) return [];
  const head = ['### Settle phase (not scored)', ''];
  const opts = run.settle_options;
  // A run without the settings stored (the first runs with the phase) was off exactly when empty.
  if (opts?.seconds === 0 || (opts === undefined && run.settle.length === 0)) {
    return [
      ...head,
      "No settle phase in this run (`--settle 0`): each ladder's first step opened after its warm-up alone, " +
        "so an adaptive policy's first seconds on a fresh lab fall in that step's window.",
      '',
    ];
  }
  if (run.settle.length === 0 && opts !== undefined) {
    return [
      ...head,
      `The settle phase was on (${loadPct(opts.fraction)} for ${opts.seconds} s) but no ladder's lab produced a result.`,
      '',
    ];
  }
  const spreads = settleSpreads(run);
  const fractions = opts
    ? loadPct(opts.fraction)
    : [...new Set(run.settle.map((x) => loadPct(x.load_fraction)))].join(', ');
  const seconds = opts
    ? String(opts.seconds)
    : [...new Set(run.settle.map((x) => x.duration_s.toFixed(0)))].join(', ');
  const several = spreads.some((x) => x.runs > 1);
  const drains = run.settle.map((x) => x.drain_s);
  const drainText =
    drains.length > 0
      ? ` After it the bench waited for the backends' backlog to clear (no new dialog for a second) before the first step (a backend it could not read was not waited on): ${Math.min(...drains).toFixed(1)}–${Math.max(...drains).toFixed(1)} s.`
      : '';
  return [
    ...head,
    `Before each ladder's first step every policy got the same load, ${fractions} of the pool's real ` +
      `capacity for ${seconds} s on its fresh lab, measured but counted in no step: it exists so that a ` +
      'policy that learns the capacities (from equal priors on the unknown pool) shows its transient here ' +
      `instead of having it scored as its first step.${drainText}${several ? ' Medians over the repetitions, range beside them.' : ''}`,
    '',
    ...table(
      ['pool', 'policy', 'runs', 'offered calls/s', 'failed %', 'p99 ms'],
      spreads.map((x) => [
        SCENARIO_LABELS[x.scenario],
        POLICY_LABELS[x.policy],
        String(x.runs),
        cps(x.offered_cps),
        spreadText(x.failed_pct, pct),
        x.p99_ms ? spreadText(x.p99_ms, ms) : 'n/a',
      ]),
      ['l', 'l', 'r', 'r', 'r', 'r'],
    ),
    '',
  ];
}

function overloadLines(run: QualityRun): string[] {
  const keys = overloadKeys(run);
  if (keys.length === 0) return ['No overload steps in this run.'];
  const over = overloadGoodput(run);
  const total = run.pool.total_cps;
  const rows = POLICIES.flatMap((p) => {
    const o = over[p];
    if (!o) return [];
    return [
      [
        POLICY_LABELS[p],
        ...keys.map((k) => {
          const g = o[k];
          return g === undefined ? 'n/a' : `${cps(g)} (${share(g / total)})`;
        }),
      ],
    ];
  });
  return [
    ...table(
      ['policy', ...keys.map((k) => `goodput at ${loadPct(Number(k))} offered, calls/s (of capacity)`)],
      rows,
      ['l', ...keys.map(() => 'r' as const)],
    ),
    '',
    `Offered: ${keys.map((k) => `${loadPct(Number(k))} = ${cps(Number(k) * total)} calls/s`).join(', ')}; ` +
      `capacity ${cps(total)} calls/s. Calls the LB refused with 503 count as failed in the step tables; ` +
      'sipp does not retry after Retry-After. sipweigh limits admission to a rate; alg 64 (kamailio_oc) ' +
      'refuses a call when every destination asks to be skipped; the other Kamailio policies run as ' +
      'configured, without a limit of their own (an operator could add one at a fixed rate, which a ' +
      'capacity drop would leave too high).',
    '',
    ...overloadVerdictLines(run),
  ];
}

/** The top overload step's test: goodput ≥ 0.9 of the real capacity with no admitted call failed. */
function overloadVerdictLines(run: QualityRun): string[] {
  const vs = overloadVerdicts(run);
  const rows = (Object.entries(vs) as [PolicyId, NonNullable<(typeof vs)[PolicyId]>][]).map(([p, v]) => {
    const ok = v.goodput_fraction.median >= 0.9 - 1e-9 && v.admitted_failed.median === 0;
    return [
      POLICY_LABELS[p],
      loadPct(v.load_fraction),
      spreadText(v.goodput_fraction, frac),
      spreadText(v.admitted_failed, (n) => String(Math.round(n))),
      ok ? '**yes**' : 'no',
    ];
  });
  if (rows.length === 0) return [];
  return [
    ...table(
      [
        'policy',
        'offered',
        'goodput, of the real capacity (median)',
        'admitted calls failed (median)',
        '≥ 0.90 and 0 failed',
      ],
      rows,
      ['l', 'r', 'r', 'r', 'l'],
    ),
    '',
    'Admitted calls failed = failed calls that the LB did not refuse with 503 (timeouts, errors): an ' +
      'admission limit that holds the pool at its capacity fails none of the calls it lets in.',
  ];
}

function dropLines(run: QualityRun): string[] {
  const drops = sortedDrops(run);
  if (drops.length === 0) return ['The capacity-drop variant was not run.'];
  const first = drops[0]!;
  const several = drops.some((d) => repOf(d) > 1);
  const recovery = first.recover_at_s !== undefined;
  const rows = drops.map((d) => [
    several ? `${POLICY_LABELS[d.policy]} (rep ${repOf(d)})` : POLICY_LABELS[d.policy],
    d.backend,
    `${cps(d.capacity_before_cps)} → ${cps(d.capacity_after_cps)}`,
    SHEDS_WITHOUT_WEIGHTS.includes(d.policy)
      ? 'n/a (alg 64)'
      : d.follow_s === null
        ? 'never'
        : `${d.follow_s.toFixed(1)} s`,
    share(fairShareAfter(d, run.pool.total_cps)),
    SHEDS_WITHOUT_WEIGHTS.includes(d.policy) ? 'n/a' : share(d.settled_share),
    pct(d.before.failed_pct),
    ms(d.before.p99_ms),
    cps(d.before.success_cps),
    pct(d.after.failed_pct),
    ms(d.after.p99_ms),
    cps(d.after.success_cps),
    ...(recovery
      ? [
          d.follow_back_s === undefined || SHEDS_WITHOUT_WEIGHTS.includes(d.policy)
            ? 'n/a'
            : d.follow_back_s === null
              ? 'never'
              : `${d.follow_back_s.toFixed(1)} s`,
          d.halved ? pct(d.halved.failed_pct) : 'n/a',
          d.recovered ? pct(d.recovered.failed_pct) : 'n/a',
        ]
      : []),
  ]);
  const medians = dropSpreads(run).map((d) => [
    POLICY_LABELS[d.policy],
    String(d.runs),
    followText(d.policy, d.follow_s),
    d.follow_back_s && !SHEDS_WITHOUT_WEIGHTS.includes(d.policy) ? timeText(d.follow_back_s) : 'n/a',
    spreadText(d.failed_before_pct, pct),
    spreadText(d.failed_after_pct, pct),
    d.failed_recovered_pct ? spreadText(d.failed_recovered_pct, pct) : 'n/a',
  ]);
  return [
    `${first.backend}'s capacity drops from ${cps(first.capacity_before_cps)} to ${cps(first.capacity_after_cps)} calls/s ` +
      `${first.drop_at_s} s into a ${first.duration_s} s run at a constant ` +
      `${cps(first.offered_cps)} calls/s${recovery ? ` and comes back ${first.recover_at_s} s into it` : ''}. ` +
      '"Weights follow within" is the time from the drop until the backend\'s ' +
      'share of the weights first came within 10 % of its fair share after the drop (its new capacity over the ' +
      "pool's), " +
      (drops.every((d) => d.weight_samples !== undefined)
        ? 'the weights read from the LB every 200 ms; '
        : 'the weights read from the LB once a second (so 2 s is anything over 1 s and up to 2 s); ') +
      '"settled" is its mean share of the weights, and "after" the calls, from 10 s after the drop to ' +
      (recovery
        ? 'the recovery. "Back within" is the time from the recovery until its share, moving up, came within ' +
          '10 % of its fair share with its capacity back; "while halved" counts every call started from the drop to ' +
          'the recovery (the time the weights take to follow included), "after the recovery" those after it. ' +
          'Static weights never move, so they never follow and never come back. Alg 64 (kamailio_oc) keeps ' +
          "its equal list and sheds a destination's selections by the oc it last answered, so no weight " +
          'follows (n/a): its failed % says how well it shed.'
        : 'the end.'),
    '',
    ...(medians.length > 0
      ? [
          ...table(
            [
              'policy',
              'runs',
              'weights follow the drop within (median)',
              'back after the recovery within',
              'failed % before',
              'failed % while halved',
              'failed % after the recovery',
            ],
            medians,
            ['l', 'r', 'r', 'r', 'r', 'r', 'r'],
          ),
          '',
        ]
      : []),
    ...table(
      [
        'policy',
        'backend',
        'capacity, calls/s',
        'weights follow within',
        'fair share after',
        'settled weight share',
        'before: failed %',
        'before: p99 ms',
        'before: success calls/s',
        'after: failed %',
        'after: p99 ms',
        'after: success calls/s',
        ...(recovery ? ['back within', 'while halved: failed %', 'after the recovery: failed %'] : []),
      ],
      rows,
      [
        'l',
        'l',
        'r',
        'r',
        'r',
        'r',
        'r',
        'r',
        'r',
        'r',
        'r',
        'r',
        ...(recovery ? (['r', 'r', 'r'] as const) : []),
      ],
    ),
  ];
}

function duration(run: QualityRun): string {
  const s = (Date.parse(run.finished_at) - Date.parse(run.started_at)) / 1000;
  if (!Number.isFinite(s) || s < 0) return 'n/a';
  return s >= 120 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(0)} s`;
}

/** Where sipweigh learned its backends' capacities: said once, before any figure, when anywhere. */
export function learnLines(run: QualityRun): string[] {
  const on = run.sipweigh_learns_on ?? [];
  if (on.length === 0 || !run.policies.includes('sipweigh')) return [];
  const where = on.map((p) => (p === 'drop' ? 'the capacity drop' : `the ${SCENARIO_LABELS[p]} ladder`));
  return [
    `sipweigh ran with \`scoring.capacity.learn: true\` (each backend's capacity learned, the configured one ` +
      `its prior) on ${where.join(', ')}; elsewhere with the default, the configured capacities taken as told.` +
      // The documented setting only when learning was where nobody measured, and there alone.
      (on.includes('unknown') && !on.includes('known') && !on.includes('slow')
        ? " Each policy runs as its documentation says for the situation: Kamailio's cc=1 with OPTIONS " +
          'every second and latency statistics, sipweigh learning where nobody measured the capacities.'
        : ''),
    '',
  ];
}

function adaptivityLines(run: QualityRun, scenarios: readonly ScenarioId[]): string[] {
  const out = [
    'The capacity fraction (the headline rule above) of each policy on each pool, median and (range) over ' +
      "the repetitions. Each pool's offered loads are fractions of its **real** capacity; what changes is " +
      'what the agents, the controller and a capacity-weighted list are told:',
    '',
    ...table(
      ['pool', 'real capacities, calls/s', 'configured, calls/s', "sipweigh's capacities"],
      scenarios.map((id) => {
        const p = poolOf(run, id);
        const learns = (run.sipweigh_learns_on ?? []).includes(id);
        return [
          SCENARIO_LABELS[id],
          p.capacities_cps.join(' / '),
          p.configured_cps.join(' / '),
          learns ? 'learned' : 'as configured',
        ];
      }),
      ['l', 'r', 'r', 'l'],
    ),
    '',
    ...scenarioMatrixLines(run, scenarios),
  ];
  for (const id of scenarios.filter((x) => x !== 'known')) {
    out.push(
      '',
      `#### ${SCENARIO_LABELS[id]}`,
      '',
      ...scenarioPoolLines(run, id),
      '',
      ...headlineLines(run, id),
    );
  }
  return out;
}

/** The benchmark's section of BENCHMARKS.md (without the markers; writeBenchmarksSection adds them). */
export function qualityMarkdown(run: QualityRun, opts: { runFile: string; plots: PlotLinks }): string {
  const backends = backendsOf(run);
  const scenarios = scenariosRun(run);
  const reps = run.reps ?? 1;
  const c = run.criteria;
  const out: string[] = [
    "## Balancing quality: sipweigh against round robin, static weights and Kamailio's adaptive mode",
    '',
    '```sh',
    run.command,
    '```',
    '',
    `Run ${run.started_at} to ${run.finished_at} (${duration(run)}${run.estimated_s !== undefined ? `; the plan estimated ${(run.estimated_s / 60).toFixed(1)} min` : ''})${run.quick ? ', **quick** (reduced) run' : ''}; ` +
      `raw results: \`${opts.runFile}\` (re-report with \`npm run bench -- quality --report ${opts.runFile}\`).`,
    '',
    ...(run.version === 2
      ? [
          `${noLadders(run) ? 'Every drop run' : `Every ladder${run.capacity_drop.length > 0 ? ' and drop run' : ''}`} ran ${reps === 1 ? 'once' : `${reps} times`}, ` +
            'each on a fresh lab, the policies interleaved (one run of each policy, then the next repetition, ' +
            'their order rotated each time); ' +
            (reps > 1
              ? 'figures are the **median** over the repetitions, with the range beside them.'
              : 'one repetition: no range, and a single run is noisy near the knee.'),
          '',
        ]
      : []),
    ...learnLines(run),
    ...machineLines(run),
    '',
    '### Pool',
    '',
    ...poolLines(run),
    '',
  ];
  if (noLadders(run)) {
    out.push('### Ladders', '', 'No ladder in this run (`--no-ladders`): the capacity-drop runs only.');
  } else {
    out.push(
      '### Headline: capacity fraction',
      '',
      `A step counts as **carried** when fewer than ${c.max_failed_pct} % of its calls failed (timeouts, errors ` +
        `and 503 refusals alike) and the p99 call-setup latency (INVITE to 200) was under ${c.max_p99_ms} ms. A ` +
        "policy's capacity fraction is the highest offered load, as a fraction of the pool's total capacity " +
        `(${cps(run.pool.total_cps)} calls/s), that it carried **with every lower step carried too**: a step that ` +
        'passes above a failed one is luck and does not count; 0 when even the lowest step failed. The figure ' +
        'moves in the steps of the load ladder, so two policies within one step of each other are not told apart.',
      '',
      ...headlineLines(run, 'known'),
      '',
      ...goalLines(goals(run)),
      '',
      ...(scenarios.length > 1 || run.version === 2
        ? [
            '### Adaptivity: the same pool under wrong or changing capacities',
            '',
            ...adaptivityLines(run, scenarios),
            '',
          ]
        : []),
      ...settleLines(run),
      '### Steps per policy',
      '',
      'Failed % includes the 503 refusals, which are also shown apart. Every call started in the window is ' +
        'judged by its own fate, however late (sipp ends only when each call has ended). Shares are of the ' +
        'dialogs each backend created in the window (its own `dialog:processed_dialogs`): under overload a ' +
        'backend that falls behind shows less than it was sent.',
    );
    for (const p of POLICIES) {
      if (!scenarioSteps(run, 'known').some((s) => s.policy === p)) continue;
      out.push('', `#### ${POLICY_LABELS[p]}`, '', ...stepTable(run, p, backends));
    }
    for (const scenario of scenarios.filter((id) => id !== 'known')) {
      for (const p of POLICIES) {
        if (!scenarioSteps(run, scenario).some((s) => s.policy === p)) continue;
        out.push(
          '',
          `#### ${SCENARIO_LABELS[scenario]}: ${POLICY_LABELS[p]}`,
          '',
          ...stepTable(run, p, backends, scenario),
        );
      }
    }
    out.push('', '### Overload: goodput', '', ...overloadLines(run));
  }
  out.push('', '### Capacity drop', '', ...dropLines(run));

  const plots: string[] = [];
  if (opts.plots.latency)
    plots.push(`![p99 and p50 setup latency against offered load](${opts.plots.latency})`);
  if (opts.plots.goodput) plots.push(`![goodput against offered load](${opts.plots.goodput})`);
  if (opts.plots.scenarios)
    plots.push(`![capacity fraction per policy and pool, median and range](${opts.plots.scenarios})`);
  if (opts.plots.dropWeights)
    plots.push(`![weights over time in the capacity drop](${opts.plots.dropWeights})`);
  if (plots.length > 0) out.push('', '### Plots', '', ...plots.flatMap((p) => [p, '']));
  else out.push('');

  out.push(
    '### How to read this',
    '',
    'The headline table says how far each policy can load this pool before calls start failing or setup ' +
      `latency runs away; the physical limit is 1.00 (every backend at its capacity). With unequal backends, round ` +
      'robin and equal weights are held back by the smallest one, which saturates first; capacity-proportional weights are ' +
      "the operator's best static guess and do well while the guess is right. In the latency plot, a policy is " +
      `good up to where its p99 line crosses the ${c.max_p99_ms} ms rule. Past 100 % the goodput table and plot ` +
      'show whether the pool keeps carrying (admission control refuses the excess with 503) or collapses. The ' +
      'capacity-drop plot shows whether the weights follow a backend that loses capacity: static weights ' +
      'cannot, so the weakened backend overflows until someone edits the list.',
    ...(scenariosRun(run).length > 1
      ? [
          '',
          'The other pools ask whether a policy needs the datasheet to be right. With every backend configured ' +
            "equal, the capacity-weighted list and Kamailio's cc=1 start from equal weights, and sipweigh " +
            'from equal capacities: a policy that keeps its figure there finds the capacities itself. With one ' +
            'backend slower than configured, a list that trusts the datasheet overloads it; the offered loads ' +
            'are fractions of what the pool really carries, so 1.00 is still the physical limit.',
        ]
      : []),
    '',
  );
  return out.join('\n');
}

// --- BENCHMARKS.md -------------------------------------------------------------------------------

export function sectionMarkers(sectionId: string): { begin: string; end: string } {
  if (!/^[a-z0-9][a-z0-9_-]*$/.test(sectionId)) {
    throw new Error(`section id ${JSON.stringify(sectionId)}: expected lower-case letters, digits, _ and -`);
  }
  return { begin: `<!-- bench:${sectionId}:begin -->`, end: `<!-- bench:${sectionId}:end -->` };
}

function count(hay: string, needle: string): number {
  return hay.split(needle).length - 1;
}

/**
 * The whole file with this benchmark's section replaced (or appended, or in a new file when `existing`
 * is null). Everything outside the markers is kept byte for byte. A file with a broken pair of markers
 * is refused rather than guessed at: a guess could eat another benchmark's section.
 */
export function replaceSection(existing: string | null, sectionId: string, markdown: string): string {
  const { begin, end } = sectionMarkers(sectionId);
  if (markdown.includes(begin) || markdown.includes(end)) {
    throw new Error(`the ${sectionId} section text itself contains its markers`);
  }
  const block = `${begin}\n${markdown.trimEnd()}\n${end}`;
  if (existing === null) return `# Benchmarks\n\n${block}\n`;
  const nb = count(existing, begin);
  const ne = count(existing, end);
  if (nb === 0 && ne === 0) {
    const base = existing.trimEnd();
    return base === '' ? `${block}\n` : `${base}\n\n${block}\n`;
  }
  const at = existing.indexOf(begin);
  const endAt = existing.indexOf(end);
  if (nb !== 1 || ne !== 1 || endAt < at) {
    throw new Error(
      `${sectionId} markers are broken (${nb} begin, ${ne} end${endAt < at && nb === 1 && ne === 1 ? ', end before begin' : ''}): fix the file by hand`,
    );
  }
  return existing.slice(0, at) + block + existing.slice(endAt + end.length);
}

/**
 * Writes `markdown` between `<!-- bench:ID:begin -->` and `<!-- bench:ID:end -->` in `file`, keeping the
 * other sections; the file is replaced atomically (temp file in the same directory, then rename), so a
 * crash leaves the old file or the new one, never half of one.
 */
export async function writeBenchmarksSection(
  file: string,
  sectionId: string,
  markdown: string,
): Promise<void> {
  let existing: string | null;
  try {
    existing = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    existing = null;
  }
  const next = replaceSection(existing, sectionId, markdown);
  if (next === existing) return;
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, next, 'utf8');
    await rename(tmp, file);
  } finally {
    await rm(tmp, { force: true });
  }
}

// --- publishing a run ----------------------------------------------------------------------------

export interface ReportOptions {
  /** Where the run's JSON is (shown in BENCHMARKS.md relative to it, and in the last line as given). */
  readonly runFile: string;
  readonly benchmarksMd: string;
  readonly plotDir: string;
  /** BENCHMARKS.md section; default "quality". */
  readonly sectionId?: string;
}

export interface ReportResult {
  /** The last-line JSON object, serialised. */
  readonly lastLine: string;
  /** The terminal summary (formatSummary). */
  readonly summary: string;
  /** Files written: the plots, then BENCHMARKS.md. */
  readonly files: readonly string[];
}

/** A path as a Markdown link from `fromFile`'s directory (forward slashes on every OS). */
function linkFrom(fromFile: string, to: string): string {
  return relative(dirname(fromFile), to).split(sep).join('/');
}

/**
 * Publishes a run: the plots into `plotDir`, this benchmark's section of `benchmarksMd`, and the
 * last-line JSON. The run is checked first, so a broken record fails before anything is rewritten.
 */
export async function reportQualityRun(run: QualityRun, opts: ReportOptions): Promise<ReportResult> {
  checkQualityRun(run, opts.runFile);
  // The charting library is loaded only here: the runner's per-step lines need none of it.
  const { writeQualityPlots } = await import('./plots.js');
  const plots = await writeQualityPlots(run, opts.plotDir);
  const link = (f: string | undefined) => (f === undefined ? undefined : linkFrom(opts.benchmarksMd, f));
  const markdown = qualityMarkdown(run, {
    runFile: linkFrom(opts.benchmarksMd, opts.runFile),
    plots: {
      latency: link(plots.latency),
      goodput: link(plots.goodput),
      dropWeights: link(plots.dropWeights),
      scenarios: link(plots.scenarios),
    },
  });
  await writeBenchmarksSection(opts.benchmarksMd, opts.sectionId ?? 'quality', markdown);
  return {
    lastLine: JSON.stringify(qualitySummary(run, opts.runFile)),
    summary: formatSummary(run),
    files: [...Object.values(plots), opts.benchmarksMd],
  };
}

/** `npm run bench -- quality --report RUN.json`: re-report a stored run without running anything. */
/** Where a run's figures go: a quick run's section and plots apart, so it never overwrites the full run's. */
export function publishTarget(quick: boolean, outDir: string): { sectionId: string; plotDir: string } {
  return {
    sectionId: quick ? 'quality-quick' : 'quality',
    plotDir: join(outDir, 'docs', 'bench', quick ? 'quick' : ''),
  };
}

export async function reportStoredRun(
  runFile: string,
  opts: Omit<ReportOptions, 'runFile'>,
): Promise<ReportResult> {
  return reportQualityRun(await readQualityRun(runFile), { ...opts, runFile });
}
