/**
 * The quality benchmark's plots: Vega-Lite specs built from a stored run (pure), compiled to Vega and
 * rendered to SVG headless (`renderer: 'none'`: a scenegraph without a canvas; SVG needs none, and
 * text widths are estimated, so the output is the same bytes on every machine for the same run).
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import {
  capacitySpread,
  fairShareAfter,
  medianSteps,
  repOf,
  scenariosRun,
  scenarioSteps,
} from './analysis.js';
import { POLICIES, SCENARIO_LABELS, type PolicyId, type QualityRun } from './types.js';

export const PLOT_FILES = {
  latency: 'quality-latency.svg',
  goodput: 'quality-goodput.svg',
  dropWeights: 'quality-drop-weights.svg',
  scenarios: 'quality-scenarios.svg',
} as const;
export type PlotName = keyof typeof PLOT_FILES;

/** The run's policies that have data, in the canonical order: a fixed colour per policy across plots. */
function presentPolicies(run: QualityRun, has: (p: PolicyId) => boolean): PolicyId[] {
  return POLICIES.filter(has);
}

// Tableau 10 picks, fixed per policy so a policy has one colour in every plot whatever else ran.
const POLICY_COLOURS: Record<PolicyId, string> = {
  round_robin: '#e15759',
  static_equal: '#f28e2b',
  static_capacity: '#76b7b2',
  kamailio_cc: '#b07aa1',
  kamailio_oc: '#59a14f',
  sipweigh: '#4e79a7',
};

function policyColour(policies: readonly PolicyId[]) {
  return {
    field: 'policy',
    type: 'nominal' as const,
    title: 'policy',
    scale: { domain: [...policies], range: policies.map((p) => POLICY_COLOURS[p]) },
    legend: { orient: 'bottom' as const, columns: 3 },
  };
}

const CONFIG = {
  font: 'Helvetica, Arial, sans-serif',
  background: 'white',
  view: { stroke: '#ddd' },
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: '#eee' },
};

function subtitle(run: QualityRun): string {
  const caps = run.pool.capacities_cps.join(' / ');
  return `pool ${caps} calls/s (total ${run.pool.total_cps}), ${run.machine.cpus} CPUs, ${run.started_at.slice(0, 10)}${run.quick ? ', quick run' : ''}`;
}

/** p99 (solid) and p50 (dashed) INVITE→200 latency against offered load, log scale, the p99 criterion as a rule. */
export function latencySpec(run: QualityRun): TopLevelSpec | null {
  const rows = run.steps.flatMap((s) => {
    if (s.setup_ms === null) return [];
    const load_pct = Math.round(s.load_fraction * 1000) / 10;
    // A log scale cannot place 0; below 0.1 ms is below sipp's timer resolution anyway.
    const at = (ms: number) => Math.max(ms, 0.1);
    return [
      { policy: s.policy, load_pct, percentile: 'p99', ms: at(s.setup_ms.p99) },
      { policy: s.policy, load_pct, percentile: 'p50', ms: at(s.setup_ms.p50) },
    ];
  });
  if (rows.length === 0) return null;
  const policies = presentPolicies(run, (p) => rows.some((r) => r.policy === p));
  const maxP99 = run.criteria.max_p99_ms;
  const x = {
    field: 'load_pct',
    type: 'quantitative' as const,
    title: 'offered load, % of total capacity (dashed: 100 %)',
    scale: { zero: false },
  };
  const y = {
    field: 'ms',
    type: 'quantitative' as const,
    title: 'call setup latency, ms (log scale)',
    scale: { type: 'log' as const },
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Call setup latency (INVITE → 200) against offered load', subtitle: subtitle(run) },
    width: 620,
    height: 360,
    config: CONFIG,
    layer: [
      {
        // Points on the p99 lines only, in their own layer: with points on every line the legend draws
        // filled dots for the percentile and the dashes cannot be told apart.
        data: { values: rows.filter((r) => r.percentile === 'p99') },
        mark: { type: 'point', filled: true, size: 30 },
        encoding: { x, y, color: policyColour(policies) },
      },
      {
        data: { values: rows },
        mark: { type: 'line', strokeWidth: 2 },
        encoding: {
          x,
          y,
          color: policyColour(policies),
          strokeDash: {
            field: 'percentile',
            type: 'nominal',
            title: 'percentile',
            scale: {
              domain: ['p99', 'p50'],
              range: [
                [1, 0],
                [5, 4],
              ],
            },
            legend: {
              orient: 'bottom',
              symbolType: 'stroke',
              symbolStrokeColor: '#333',
              symbolStrokeWidth: 2,
            },
          },
        },
      },
      {
        data: { values: [{ ms: maxP99, load_pct: 100 }] },
        layer: [
          {
            mark: { type: 'rule', color: '#c00', strokeDash: [2, 2] },
            encoding: { y: { field: 'ms', type: 'quantitative' } },
          },
          {
            mark: { type: 'text', color: '#c00', align: 'left', dx: 4, dy: -7, x: 0 },
            encoding: {
              y: { field: 'ms', type: 'quantitative' },
              text: { value: `p99 criterion ${maxP99} ms` },
            },
          },
          {
            mark: { type: 'rule', color: '#888', strokeDash: [6, 3] },
            encoding: { x: { field: 'load_pct', type: 'quantitative' } },
          },
        ],
      },
    ],
  };
}

/** Successful calls/s against offered calls/s, overload steps included, with y = x and the capacity line. */
export function goodputSpec(run: QualityRun): TopLevelSpec | null {
  const rows = run.steps.map((s) => ({
    policy: s.policy,
    offered_cps: s.offered_cps,
    success_cps: s.success_cps,
  }));
  if (rows.length === 0) return null;
  const policies = presentPolicies(run, (p) => rows.some((r) => r.policy === p));
  const maxOffered = Math.max(...rows.map((r) => r.offered_cps), run.pool.total_cps);
  const x = { field: 'offered_cps', type: 'quantitative' as const, title: 'offered calls/s' };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Goodput: successful calls/s against offered load', subtitle: subtitle(run) },
    width: 620,
    height: 360,
    config: CONFIG,
    layer: [
      {
        data: {
          values: [
            { offered_cps: 0, success_cps: 0 },
            { offered_cps: maxOffered, success_cps: maxOffered },
          ],
        },
        mark: { type: 'line', color: '#999', strokeDash: [4, 4], strokeWidth: 1 },
        encoding: { x, y: { field: 'success_cps', type: 'quantitative' } },
      },
      {
        data: { values: [{ success_cps: run.pool.total_cps }] },
        layer: [
          {
            mark: { type: 'rule', color: '#333', strokeDash: [2, 2] },
            encoding: { y: { field: 'success_cps', type: 'quantitative' } },
          },
          {
            mark: { type: 'text', color: '#333', align: 'left', dx: 4, dy: -7, x: 0 },
            encoding: {
              y: { field: 'success_cps', type: 'quantitative' },
              text: {
                value: `total capacity ${run.pool.total_cps} calls/s (dashed diagonal: every call carried)`,
              },
            },
          },
        ],
      },
      {
        data: { values: rows },
        mark: { type: 'line', point: true, strokeWidth: 2 },
        encoding: {
          x,
          y: { field: 'success_cps', type: 'quantitative', title: 'successful calls/s (goodput)' },
          color: policyColour(policies),
        },
      },
    ],
  };
}

/**
 * The capacity-drop run, one column per policy: each backend's share of the weights over time with
 * the drop as a vertical rule and the dropped backend's new fair share as a dashed level (top), and
 * failed calls per second (bottom).
 */
export function dropWeightsSpec(run: QualityRun): TopLevelSpec | null {
  const drops = [...run.capacity_drop].sort(
    (a, b) => POLICIES.indexOf(a.policy) - POLICIES.indexOf(b.policy),
  );
  if (drops.length === 0) return null;
  const policies = drops.map((d) => d.policy);
  const total = run.pool.total_cps;
  const shareRows = drops.flatMap((d) =>
    d.timeline.flatMap((t) => {
      const sum = Object.values(t.weights).reduce((a, w) => a + (Number.isFinite(w) && w > 0 ? w : 0), 0);
      return Object.entries(t.weights).map(([backend, w]) => ({
        policy: d.policy,
        t_s: t.t_s,
        backend,
        share: sum > 0 && Number.isFinite(w) && w > 0 ? w / sum : 0,
      }));
    }),
  );
  const markers = drops.map((d) => ({
    policy: d.policy,
    drop_at_s: d.drop_at_s,
    ...(d.recover_at_s === undefined ? {} : { recover_at_s: d.recover_at_s }),
    // What the dropped backend should get once the weights have followed.
    fair_after: fairShareAfter(d, total),
  }));
  const failedRows = drops.flatMap((d) =>
    d.timeline.map((t) => ({ policy: d.policy, t_s: t.t_s, failed: t.failed })),
  );
  const maxT = Math.max(
    ...drops.map((d) => d.duration_s),
    ...drops.flatMap((d) => d.timeline.map((t) => t.t_s)),
  );
  const x = {
    field: 't_s',
    type: 'quantitative' as const,
    title: 'seconds since load started',
    scale: { domain: [0, maxT], nice: false },
  };
  const backends = [...new Set(shareRows.map((r) => r.backend))];
  const ordered = [
    ...run.pool.backends.filter((b) => backends.includes(b)),
    ...backends.filter((b) => !run.pool.backends.includes(b)).sort(),
  ];
  const column = (title: string | null) => ({
    field: 'policy',
    type: 'nominal' as const,
    sort: policies,
    title,
    header: { labelFontSize: 13, labelFontWeight: 'bold' as const },
  });
  // Each faceted row carries its policy's markers, so the rules can sit in the same facet cell.
  const dropRule = {
    mark: { type: 'rule' as const, color: '#c00', strokeWidth: 1.5 },
    encoding: { x: { aggregate: 'min' as const, field: 'drop_at_s', type: 'quantitative' as const } },
  };
  // The recovery, when the run had one: a green rule (only then: a rule without a value would be NaN).
  const recoverRules = drops.some((d) => d.recover_at_s !== undefined)
    ? [
        {
          mark: { type: 'rule' as const, color: '#2a2', strokeWidth: 1.5 },
          encoding: {
            x: { aggregate: 'min' as const, field: 'recover_at_s', type: 'quantitative' as const },
          },
        },
      ]
    : [];
  const first = drops[0]!;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `Capacity drop: ${first.backend} from ${first.capacity_before_cps} to ${first.capacity_after_cps} calls/s at ${first.drop_at_s} s${first.recover_at_s === undefined ? '' : `, back at ${first.recover_at_s} s`}`,
      subtitle: `${subtitle(run)}; ${first.offered_cps} calls/s offered throughout`,
    },
    config: CONFIG,
    vconcat: [
      {
        facet: { column: column(null) },
        data: { values: shareRows.map((r) => ({ ...r, ...markers.find((m) => m.policy === r.policy)! })) },
        spec: {
          width: 260,
          height: 180,
          layer: [
            {
              mark: { type: 'line', strokeWidth: 2, interpolate: 'step-after' },
              encoding: {
                x,
                y: {
                  field: 'share',
                  type: 'quantitative',
                  title: 'share of the weights',
                  scale: { domain: [0, 1] },
                  axis: { format: '%' },
                },
                color: {
                  field: 'backend',
                  type: 'nominal',
                  title: 'backend',
                  scale: { domain: ordered, scheme: 'tableau10' },
                  legend: { orient: 'right' },
                },
              },
            },
            dropRule,
            ...recoverRules,
            {
              mark: { type: 'rule', color: '#555', strokeDash: [4, 3] },
              encoding: { y: { aggregate: 'min', field: 'fair_after', type: 'quantitative' } },
            },
          ],
        },
      },
      {
        facet: { column: column(null) },
        data: { values: failedRows.map((r) => ({ ...r, ...markers.find((m) => m.policy === r.policy)! })) },
        spec: {
          width: 260,
          height: 110,
          layer: [
            {
              mark: { type: 'bar', color: '#e15759', width: Math.max(1, (260 / maxT) * 0.8) },
              encoding: {
                x,
                y: { field: 'failed', type: 'quantitative', title: 'failed calls per second' },
              },
            },
            dropRule,
            ...recoverRules,
          ],
        },
      },
    ],
    resolve: { scale: { color: 'independent' } },
  };
}

/**
 * A Vega-Lite spec to SVG, headless. Vega writes the whole document on one line; one element per
 * line keeps a regenerated plot's git diff to the marks that moved. (Whitespace between elements is
 * not rendered, and text content is escaped, so `><` only ever occurs between two tags.)
 */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return (await view.toSVG()).replace(/></g, '>\n<');
  } finally {
    view.finalize();
  }
}

/**
 * Capacity fraction per pool (known, unknown, slow) and policy: a bar at the median over the
 * repetitions, a rule over the range. null when the run has no steps.
 */
export function scenariosSpec(run: QualityRun): TopLevelSpec | null {
  const rows = scenariosRun(run).flatMap((id) =>
    POLICIES.flatMap((p) => {
      const sp = capacitySpread(run, id, p);
      return sp
        ? [{ pool: SCENARIO_LABELS[id], policy: p, median: sp.median, min: sp.min, max: sp.max }]
        : [];
    }),
  );
  if (rows.length === 0) return null;
  const policies = presentPolicies(run, (p) => rows.some((r) => r.policy === p));
  const pools = [...new Set(rows.map((r) => r.pool))];
  const x = {
    field: 'pool',
    type: 'nominal' as const,
    title: null,
    sort: pools,
    axis: { labelAngle: 0, labelLimit: 220 },
  };
  const xOffset = { field: 'policy', type: 'nominal' as const, sort: policies };
  const y = {
    type: 'quantitative' as const,
    title: 'capacity fraction (median; rule: range)',
    scale: { domain: [0, Math.max(1, ...rows.map((r) => r.max))] },
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Capacity fraction per policy: known, unknown and wrong capacities',
      subtitle: subtitle(run),
    },
    width: 620,
    height: 300,
    config: CONFIG,
    data: { values: rows },
    layer: [
      {
        mark: { type: 'bar' },
        encoding: { x, xOffset, y: { ...y, field: 'median' }, color: policyColour(policies) },
      },
      {
        mark: { type: 'rule', color: '#333', strokeWidth: 1.5 },
        encoding: { x, xOffset, y: { ...y, field: 'min' }, y2: { field: 'max' } },
      },
    ],
  };
}

/**
 * What the latency, goodput and drop plots show of a repeated run: the known pool's steps as medians
 * over the repetitions, and each policy's first drop run (a timeline cannot be a median).
 */
export function plotView(run: QualityRun): QualityRun {
  const firstDrops = POLICIES.flatMap((p) => {
    const ds = run.capacity_drop.filter((d) => d.policy === p).sort((a, b) => repOf(a) - repOf(b));
    return ds.length > 0 ? [ds[0]!] : [];
  });
  return { ...run, steps: medianSteps(scenarioSteps(run, 'known'), run.criteria), capacity_drop: firstDrops };
}

/** The specs of the plots this run has data for. */
export function qualityPlotSpecs(run: QualityRun): Partial<Record<PlotName, TopLevelSpec>> {
  const out: Partial<Record<PlotName, TopLevelSpec>> = {};
  const view = plotView(run);
  const latency = latencySpec(view);
  const goodput = goodputSpec(view);
  const drop = dropWeightsSpec(view);
  const scenarios = scenariosSpec(run);
  if (latency) out.latency = latency;
  if (goodput) out.goodput = goodput;
  if (drop) out.dropWeights = drop;
  if (scenarios) out.scenarios = scenarios;
  return out;
}

/** Writes each plot the run has data for into `dir` (temp file + rename); returns the written paths by plot. */
export async function writeQualityPlots(
  run: QualityRun,
  dir: string,
): Promise<Partial<Record<PlotName, string>>> {
  await mkdir(dir, { recursive: true });
  const written: Partial<Record<PlotName, string>> = {};
  for (const [name, spec] of Object.entries(qualityPlotSpecs(run)) as [PlotName, TopLevelSpec][]) {
    const svg = await renderSvg(spec);
    const file = join(dir, PLOT_FILES[name]);
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      await writeFile(tmp, `${svg}\n`, 'utf8');
      await rename(tmp, file);
    } finally {
      await rm(tmp, { force: true });
    }
    written[name] = file;
  }
  return written;
}

/** The plots of a run into `dir`; the written paths. */
export async function renderQualityPlots(run: QualityRun, dir: string): Promise<string[]> {
  return Object.values(await writeQualityPlots(run, dir));
}
