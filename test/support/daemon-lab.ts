/**
 * A lab (real LB, backends, agents) whose `sipweigh controller` the test starts itself, on a config
 * it edits first: for the tests that show a documented feature through the daemons. Everything is
 * read from outside, as an operator would: the LB's dispatcher.list over JSON-RPC, the controller's
 * HTTP API and its /metrics. Never its log lines.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { fetchDispatcherList, fetchEffectiveWeights } from '../../src/kamailio/fetch-dispatcher-list.js';
import type { DispatcherTarget } from '../../src/kamailio/dispatcher-list-reply.js';
import { KamailioRpcClient } from '../../src/kamailio/rpc.js';
import { lbDefines } from '../../src/lab/defines.js';
import { startKamailio, type KamailioInstance } from '../../src/lab/kamailio.js';
import { labApiUrl } from '../../src/lab/lab-configs.js';
import { LAB_CONFIGS, startLab, type RunningLab, type StartLabOptions } from '../../src/lab/lab.js';
import type { ManagedProcess } from '../../src/lab/processes.js';
import { sipweighCommand } from '../../src/lab/self-command.js';
import { http, parseMetrics, type Sample } from '../integration/api-support.js';
import { labRpc } from './lb-watch.js';
import { eventually } from './harness.js';

/** The lab controller's YAML as plain data, to edit before writing it back. */
export interface ControllerYaml {
  heartbeat: Record<string, unknown>;
  lb_nodes: Record<string, unknown>[];
  sets: { id: number; self_registration?: boolean; backends: Record<string, unknown>[] }[];
  schedules?: Record<string, unknown>;
  [k: string]: unknown;
}

/** One backend as the API lists it (the fields these tests read). */
export interface ApiBackend {
  readonly id: string;
  readonly set: number;
  readonly uri: string;
  readonly source: string;
  readonly state: string;
  readonly drained: boolean;
  readonly drain_cause: string | null;
  readonly capacity_cps: number;
  readonly weights: Readonly<Record<string, number | null>>;
  readonly score: {
    readonly weight: number | null;
    readonly phase: string;
    readonly learned_cps: number | null;
  } | null;
}

export interface DaemonLab {
  readonly lab: RunningLab;
  readonly rpc: KamailioRpcClient;
  /** Base URL of the controller's HTTP API. */
  readonly base: string;
  readonly token: string;
  /** The config file the test's controller runs on. */
  readonly file: string;
  controller: ManagedProcess | undefined;
  /** A fresh copy of the lab's generated controller config. */
  labConfig(): ControllerYaml;
  /** Writes `cfg` as the controller's file (mode 0600, it holds the RPC password). */
  writeConfig(cfg: ControllerYaml): void;
  /** Writes `cfg` and starts `sipweigh controller` on it. */
  startController(cfg: ControllerYaml): ManagedProcess;
  /** What the LB holds: backend id (duid, else URI) -> effective weight; null when it does not answer. */
  lbWeights(): Promise<Map<string, number> | null>;
  lbTargets(): Promise<readonly DispatcherTarget[]>;
  backends(): Promise<ApiBackend[]>;
  backend(id: string): Promise<ApiBackend | null>;
  status<T = Record<string, unknown>>(): Promise<T>;
  metrics(): Promise<Sample[]>;
  stop(): Promise<void>;
}

export async function startDaemonLab(opts: Omit<StartLabOptions, 'dir' | 'controller'>): Promise<DaemonLab> {
  const lab = await startLab({
    ...opts,
    controller: false,
    dir: mkdtempSync(join(tmpdir(), `sipweigh-daemon-${opts.net ?? 0}-`)),
  });
  const rpc = labRpc(lab);
  const base = labApiUrl(lab.state.plan);
  const file = join(lab.state.dir, 'controller-test.yaml');
  const d: DaemonLab = {
    lab,
    rpc,
    base,
    token: readFileSync(lab.state.configs.apiToken, 'utf8').trim(),
    file,
    controller: undefined,
    labConfig: () => parse(readFileSync(lab.state.configs.controller, 'utf8')) as ControllerYaml,
    writeConfig: (cfg) => writeFileSync(file, stringify(cfg), { mode: 0o600 }),
    startController: (cfg) => {
      d.writeConfig(cfg);
      const self = sipweighCommand();
      const p = lab.group.spawn('controller', self.cmd, [...self.args, 'controller', '--config', file]);
      d.controller = p;
      return p;
    },
    lbWeights: () => fetchEffectiveWeights(rpc, { deadlineMs: 2000 }),
    lbTargets: async () => {
      const r = await fetchDispatcherList(rpc, { deadlineMs: 2000 });
      if (!r.ok) throw new Error(r.error);
      return r.targets;
    },
    backends: async () => {
      const r = await http('GET', `${base}/api/v1/backends`);
      if (r.status !== 200) throw new Error(`GET /api/v1/backends: ${r.status}`);
      return (r.json as { backends: ApiBackend[] }).backends;
    },
    backend: async (id) => {
      const r = await http('GET', `${base}/api/v1/backends/${id}`);
      return r.status === 200 ? (r.json as ApiBackend) : null;
    },
    status: async <T>() => {
      const r = await http('GET', `${base}/api/v1/status`);
      if (r.status !== 200) throw new Error(`GET /api/v1/status: ${r.status}`);
      return r.json as T;
    },
    metrics: async () => {
      const r = await http('GET', `${base}/metrics`);
      if (r.status !== 200) throw new Error(`GET /metrics: ${r.status}`);
      return parseMetrics(r.text);
    },
    stop: async () => {
      rpc.close();
      await lab.stop();
    },
  };
  return d;
}

/**
 * Another LB beside the lab's: the same lab src/lab/kamailio/lb.cfg with admission control, its own
 * address and list file, the lab's RPC credentials. Started (again) on whatever the file holds.
 */
export function startExtraLb(
  lab: RunningLab,
  name: string,
  ip: string,
  listFile: string,
): Promise<KamailioInstance> {
  const { rpc } = lab.state.plan.lb;
  return startKamailio(lab.group, {
    name,
    cfg: LAB_CONFIGS.lb,
    defines: {
      ...lbDefines({
        sip: { address: ip, port: 5060 },
        rpc: { address: ip, port: 5071, username: rpc.username, password: rpc.password },
        rpcAllow: ['127.0.0.1', ip],
        dispatcherList: listFile,
        dispatcherSet: lab.state.plan.lb.dispatcherSet,
      }),
      SW_ADMISSION: true,
    },
    shmMb: 64,
    waitFor: [
      { transport: 'udp', address: ip, port: 5060 },
      { transport: 'tcp', address: ip, port: 5071 },
    ],
  });
}

/** An RPC client for an LB started with `startExtraLb`. */
export function extraLbRpc(lab: RunningLab, ip: string): KamailioRpcClient {
  const { rpc } = lab.state.plan.lb;
  return new KamailioRpcClient({
    url: `http://${ip}:5071/RPC`,
    username: rpc.username,
    password: rpc.password,
  });
}

export { descendantPids } from './proc-tree.js';

/**
 * Waits until every backend of `ids` is up by the controller's word and in rotation at lb1, both in
 * the API and in what the LB lists (the lab's initial list has them in rotation before the
 * controller has heard a single answer, so the LB alone proves nothing).
 */
export async function allUpAndPushed(d: DaemonLab, ids: readonly string[], what: string): Promise<void> {
  await eventually(
    async () => {
      const api = await d.backends();
      const w = await d.lbWeights();
      return (
        api.length === ids.length &&
        api.every((b) => b.state === 'up' && (b.weights.lb1 ?? 0) > 0) &&
        ids.every((id) => (w?.get(id) ?? 0) > 0)
      );
    },
    what,
    60000,
  );
}
