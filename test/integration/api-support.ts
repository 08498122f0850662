/**
 * Shared by the API, metrics and reload tests: a lab whose controller has its HTTP API, plain HTTP
 * calls (no client library between the test and the wire), and response checks against
 * schemas/api/.
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { apiValidator, type ApiSchemaName } from '../../src/api/schemas.js';
import { labApiUrl } from '../../src/lab/lab-configs.js';
import { startLab, type RunningLab, type StartLabOptions } from '../../src/lab/lab.js';
import { eventually } from '../support/harness.js';

export interface ApiLab {
  readonly lab: RunningLab;
  readonly base: string;
  readonly token: string;
  readonly controllerConfig: string;
}

export async function startApiLab(opts: Omit<StartLabOptions, 'dir'> & { net: 14 | 15 }): Promise<ApiLab> {
  const lab = await startLab({ ...opts, dir: mkdtempSync(join(tmpdir(), `sipweigh-api-${opts.net}-`)) });
  return {
    lab,
    base: labApiUrl(lab.state.plan),
    token: readFileSync(lab.state.configs.apiToken, 'utf8').trim(),
    controllerConfig: lab.state.configs.controller,
  };
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  readonly json: unknown;
}

export async function http(
  method: string,
  url: string,
  opts: { token?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<HttpAnswer> {
  const res = await fetch(url, {
    method,
    headers: { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...opts.headers },
    ...(opts.body !== undefined ? { body: opts.body } : {}),
    signal: AbortSignal.timeout(15000),
  });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    // /metrics is text.
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** Asserts `body` is valid against schemas/api/<name>.schema.json, with ajv's reasons if not. */
export function expectSchema(name: ApiSchemaName, body: unknown): void {
  const validate = apiValidator(name);
  const ok = validate(body);
  expect(ok, `${name}: ${JSON.stringify(validate.errors)} in ${JSON.stringify(body).slice(0, 500)}`).to.equal(
    true,
  );
}

/** Waits until /readyz says ready (every LB node read or pushed). */
export function waitReady(base: string): Promise<unknown> {
  return eventually(
    async () => (await http('GET', `${base}/readyz`)).status === 200,
    'the controller to be ready',
    60000,
  );
}

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Prometheus text exposition -> samples (enough of the format for prom-client's output). */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

export function sample(
  samples: readonly Sample[],
  name: string,
  labels: Record<string, string>,
): Sample | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}
