/**
 * The shipped Grafana dashboard only queries metrics the controller really exports: every
 * `sipweigh_*` name in its expressions and variable queries exists in a fresh telemetry registry.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ControllerTelemetry } from '../../src/telemetry/metrics.js';
import { REPO_ROOT } from '../support/harness.js';

interface Panel {
  type: string;
  title: string;
  datasource?: { uid?: string };
  targets?: { expr: string }[];
}

const dashboard = JSON.parse(
  readFileSync(join(REPO_ROOT, 'scripts/grafana/sipweigh-dashboard.json'), 'utf8'),
) as {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown }[] };
};

function exportedNames(): Set<string> {
  const t = new ControllerTelemetry();
  const names = new Set<string>();
  for (const m of t.registry.getMetricsAsArray()) {
    const name = (m as unknown as { name: string; constructor: { name: string } }).name;
    names.add(name);
    if ((m as unknown as { constructor: { name: string } }).constructor.name === 'Histogram') {
      for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
    }
  }
  return names;
}

const metricNames = (expr: string): string[] => expr.match(/\bsipweigh_[a-z0-9_]+/g) ?? [];

describe('Grafana dashboard (scripts/grafana/sipweigh-dashboard.json)', function () {
  const exported = exportedNames();
  const panels = dashboard.panels.filter((p) => p.type !== 'row');
  const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
  const variableQueries = dashboard.templating.list
    .filter((v) => v.type === 'query')
    .map((v) => ({ panel: `variable ${v.name}`, expr: (v.query as { query: string }).query }));

  it('has panels for weights, factors, signals, heartbeat, pushes, drops and the LB socket, each with a query', function () {
    const titles = panels.map((p) => p.title.toLowerCase()).join(' | ');
    for (const topic of [
      'weight',
      'derating factor',
      'signal',
      'round trip',
      'misses',
      'push latency',
      'outcome',
      'dropped',
      'lb socket receive queue',
      'lb socket drops',
    ])
      expect(titles, topic).to.contain(topic);
    for (const p of panels) expect(p.targets ?? [], p.title).to.not.be.empty;
  });

  it('reads every panel from the Prometheus datasource variable', function () {
    expect(dashboard.templating.list.find((v) => v.name === 'datasource')?.type).to.equal('datasource');
    for (const p of panels) expect(p.datasource?.uid, p.title).to.equal('${datasource}');
  });

  it('names only metrics the controller exports', function () {
    const used = [...exprs, ...variableQueries].flatMap(({ panel, expr }) =>
      metricNames(expr).map((name) => ({ panel, name })),
    );
    expect(used.length).to.be.greaterThan(20);
    const missing = used.filter((u) => !exported.has(u.name));
    expect(missing, JSON.stringify(missing)).to.deep.equal([]);
  });

  it('the check itself would catch a misspelt metric', function () {
    expect(exported.has('sipweigh_backend_weight')).to.equal(true);
    expect(exported.has('sipweigh_backend_wieght')).to.equal(false);
    expect(exported.has('sipweigh_lb_push_duration_seconds_bucket')).to.equal(true);
  });
});
