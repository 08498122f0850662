import { expect } from 'chai';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  dropWeightsSpec,
  goodputSpec,
  latencySpec,
  qualityPlotSpecs,
  renderQualityPlots,
  renderSvg,
} from '../../scripts/bench/quality/plots.js';
import type { QualityRun } from '../../scripts/bench/quality/types.js';
import { fixturePolicies, fixtureRun, runWith, step } from './bench-quality-fixture.js';

/** aria-labels of the line paths (vega labels each series by its first point and its fields). */
function lineLabels(svg: string): string[] {
  return [
    ...svg.matchAll(/<path aria-label="([^"]*)" role="graphics-symbol" aria-roledescription="line mark"/g),
  ].map((m) => m[1]!);
}

function expectSvg(svg: string): void {
  expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'), svg.slice(0, 80)).to.equal(true);
  expect(svg.trimEnd().endsWith('</svg>')).to.equal(true);
  expect(svg).not.to.contain('NaN');
}

describe('bench quality: plots', function () {
  this.timeout(60000);
  const run = fixtureRun();

  it('latency: a p99 and a dashed p50 line per policy on a log axis, the 200 ms criterion', async () => {
    const svg = await renderSvg(latencySpec(run)!);
    expectSvg(svg);
    const lines = lineLabels(svg);
    for (const p of fixturePolicies()) {
      expect(lines.filter((l) => l.endsWith(`policy: ${p}; percentile: p99`))).to.have.length(1);
      expect(lines.filter((l) => l.endsWith(`policy: ${p}; percentile: p50`))).to.have.length(1);
    }
    expect(svg.match(/stroke-dasharray="5,4"/g) ?? []).to.have.length.of.at.least(fixturePolicies().length);
    expect(svg).to.contain("Y-axis titled 'call setup latency, ms (log scale)' for a log scale");
    expect(svg).to.contain("X-axis titled 'offered load, % of total capacity (dashed: 100 %)'");
    expect(svg).to.contain('p99 criterion 200 ms');
  });

  it('latency: only the policies that ran, and steps without a successful call left out', async () => {
    const steps = [
      step(0.4),
      step(0.7),
      step(0.4, { policy: 'round_robin' }),
      step(0.7, { policy: 'round_robin', setup_ms: null }),
    ];
    const svg = await renderSvg(latencySpec(runWith(steps))!);
    expect(svg).to.contain('with 2 values: round_robin, sipweigh');
    expect(lineLabels(svg)).to.have.length(4);
    expect(latencySpec(runWith([step(0.4, { setup_ms: null })]))).to.equal(null);
  });

  it('goodput: a line per policy with the overload steps, the ideal diagonal and the capacity', async () => {
    const svg = await renderSvg(goodputSpec(run)!);
    expectSvg(svg);
    const lines = lineLabels(svg);
    for (const p of fixturePolicies())
      expect(lines.filter((l) => l.endsWith(`policy: ${p}`))).to.have.length(1);
    expect(lines).to.include('offered calls/s: 0; success_cps: 0');
    expect(svg).to.contain('total capacity 175 calls/s');
    expect(svg).to.contain("X-axis titled 'offered calls/s'");
    expect(svg).to.contain("Y-axis titled 'successful calls/s (goodput)'");
    // 8 steps per policy, the overload steps (offered 192.5 and 227.5) among them.
    expect(svg).to.contain('offered calls/s: 227.5; successful calls/s (goodput): 156.4; policy: sipweigh');
  });

  it('capacity drop: a panel per policy, a line per backend, the drop as a rule, failed calls below', async () => {
    const svg = await renderSvg(dropWeightsSpec(run)!);
    expectSvg(svg);
    for (const p of ['static_capacity', 'kamailio_cc', 'sipweigh']) expect(svg).to.contain(`>${p}</text>`);
    expect(svg).not.to.contain('>round_robin</text>');
    const lines = lineLabels(svg);
    for (const b of ['be1', 'be2', 'be3'])
      expect(lines.filter((l) => l.endsWith(`backend: ${b}`))).to.have.length(3);
    // The drop in both rows of each of the 3 panels; the new fair share of be3 (50 of 125) in the top row.
    expect(svg.match(/aria-label="Min of drop_at_s: 10"/g)).to.have.length(6);
    expect(svg.match(/aria-label="Min of fair_after: 0.4"/g)).to.have.length(3);
    expect(svg).to.contain('>share of the weights</text>');
    expect(svg).to.contain('>failed calls per second</text>');
    expect(svg).to.contain('Capacity drop: be3 from 100 to 50 calls/s at 10 s');
  });

  it('the same run gives the same bytes', async () => {
    const a = await renderSvg(dropWeightsSpec(run)!);
    const b = await renderSvg(dropWeightsSpec(fixtureRun())!);
    expect(a).to.equal(b);
  });

  it('writes the plots the run has data for, and nothing for an empty run', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sipweigh-bench-plots-'));
    try {
      const noDrop: QualityRun = { ...run, capacity_drop: [] };
      const written = await renderQualityPlots(noDrop, join(dir, 'a'));
      expect(written.map((f) => f.slice(dir.length + 1))).to.deep.equal([
        'a/quality-latency.svg',
        'a/quality-goodput.svg',
        'a/quality-scenarios.svg',
      ]);
      expect((await readdir(join(dir, 'a'))).sort()).to.deep.equal([
        'quality-goodput.svg',
        'quality-latency.svg',
        'quality-scenarios.svg',
      ]);
      const empty: QualityRun = { ...run, steps: [], capacity_drop: [] };
      expect(qualityPlotSpecs(empty)).to.deep.equal({});
      expect(await renderQualityPlots(empty, join(dir, 'b'))).to.deep.equal([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
