/**
 * The local lab: one or more Kamailio LBs (DMQ between them), N Kamailio backends and a sipp UAS behind each, on loopback, from the
 * lab's own configs (src/lab/kamailio/, built on the product snippets in kamailio/). `up` leaves the processes running (their PIDs in a state file),
 * `down` stops them by PID, `status` checks them. Also used in-process by tests, the demo and the
 * benchmarks (`startLab` returns a handle whose `stop()` ends everything).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LAB_KAMAILIO_CFG_DIR } from '../util/package-root.js';
import { formatDispatcherList, type Destination } from '../kamailio/dispatcher-list.js';
import { backendDefines, dmqDefines, lbDefines, type BackendSettings, type LbSettings } from './defines.js';
import { kamailioBinary, startKamailio, type Defines, type KamailioInstance } from './kamailio.js';
import { kamailioFeatures, probeKamailio } from './platforms.js';
import { openSipsLbFilesAt, startOpenSipsLb, type LbKind, type OpenSipsLbSettings } from './opensips.js';
import { pidAlive, ProcessGroup, stopPid, type ManagedProcess } from './processes.js';
import { LAB_API_PORT, writeLabConfigs, type LabConfigFiles } from './lab-configs.js';
import { sipweighCommand } from './self-command.js';
import { LAB_SCENARIOS } from './scenarios.js';
import { startSipp } from './sipp.js';
import { isBound, type Endpoint } from './sockets.js';
import { planLab, type BackendPlan, type LabOptions, type LabPlan, type LbPlan } from './topology.js';
import { sleep } from '../util/sleep.js';

export const DEFAULT_LAB_DIR = process.env.SIPWEIGH_LAB_DIR ?? '/tmp/sipweigh-lab';
export const LAB_CONFIGS = {
  lb: join(LAB_KAMAILIO_CFG_DIR, 'lb.cfg'),
  backend: join(LAB_KAMAILIO_CFG_DIR, 'backend.cfg'),
};
export { LAB_SCENARIOS };

export interface LabMember {
  readonly name: string;
  readonly role: 'lb' | 'backend' | 'uas' | 'agent' | 'controller';
  readonly pid: number;
  readonly log: string;
  readonly endpoints: readonly Endpoint[];
}

/** What `lab up --json` prints and what `lab status`/`down` read back. */
export interface LabState {
  readonly version: 1;
  readonly dir: string;
  readonly started_at: string;
  readonly plan: LabPlan;
  readonly dispatcher_list: string;
  readonly lb_rpc_url: string;
  /** The LB's SIP server (absent in states written before `--lb`: kamailio). */
  readonly lb_kind?: LbKind;
  /** The sipweigh configs generated for this lab (master key, controller, one agent per backend). */
  readonly configs: LabConfigFiles;
  readonly members: readonly LabMember[];
  /**
   * Every LB node, LB 0 first (whose list and URL are also dispatcher_list and lb_rpc_url above);
   * absent in states written before `--lbs`.
   */
  readonly lbs?: readonly LabLb[];
}

/** One LB node of a running lab: its name among lb_nodes, its member's name, where to reach it. */
export interface LabLb {
  readonly name: string;
  readonly member: string;
  readonly rpc_url: string;
  readonly dispatcher_list: string;
  /** Its DMQ URI; null with a single LB. */
  readonly dmq: string | null;
}

export interface RunningLab {
  readonly state: LabState;
  readonly group: ProcessGroup;
  /** Stops every process of the lab by PID. */
  stop(): Promise<void>;
}

const stateFile = (dir: string) => join(dir, 'state.json');

export function readLabState(dir = DEFAULT_LAB_DIR): LabState | undefined {
  const file = stateFile(dir);
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as LabState;
}

function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

export function lbSettings(plan: LabPlan, dispatcherList: string, lb: LbPlan = plan.lb): LbSettings {
  return {
    sip: lb.sip,
    rpc: lb.rpc,
    // The controller runs beside the LB in the lab; local tools connect from 127.0.0.1 (the kernel's
    // default source on lo). Any other loopback address is refused (403).
    rpcAllow: ['127.0.0.1', lb.rpc.address],
    dispatcherList,
    dispatcherSet: lb.dispatcherSet,
  };
}

/**
 * The lab member name of LB `i` (0-based): LB 0 is `lb`, as it was before the lab had more than one
 * (tools and tests kill and restart it by that name); the others are named as in lb_nodes.
 */
export function lbMemberName(plan: LabPlan, i: number): string {
  const lb = plan.lbs[i];
  if (!lb) throw new Error(`the lab has no LB ${i}`);
  return i === 0 ? 'lb' : lb.name;
}

/** Every Kamailio LB's sockets, the DMQ one included: the LB counts as started once all are bound. */
export function lbEndpoints(lb: LbPlan): Endpoint[] {
  return [
    { transport: 'udp', ...lb.sip },
    { transport: 'tcp', ...lb.sip },
    { transport: 'tcp', address: lb.rpc.address, port: lb.rpc.port },
    ...(lb.dmq ? [{ transport: 'udp' as const, ...lb.dmq.sip }] : []),
  ];
}

export function backendSettings(plan: LabPlan, be: BackendPlan): BackendSettings {
  return {
    sip: be.sip,
    // Calls reach it from any LB node: each one's stamp of the client's address is believed.
    trustedLbs: plan.lbs.map((lb) => lb.sip.address),
    uas: be.uas,
    rpcPort: be.rpcPort,
    ...(be.emulation ? { workers: be.emulation.workers, serviceDelayUs: be.emulation.delayUs } : {}),
  };
}

/**
 * The LB's list at start: weights proportional to the configured capacities (the operator's best static
 * guess: the emulated ones unless the lab was told otherwise), or equal (a naive list, so the demo shows the controller correcting it).
 */
export function initialDestinations(
  plan: LabPlan,
  weights: 'capacity' | 'equal' = 'capacity',
): Destination[] {
  const caps = plan.backends.map((b) => (weights === 'equal' ? 1 : b.configuredCapacity));
  const max = Math.max(...caps);
  return plan.backends.map((b, i) => ({
    setId: plan.lb.dispatcherSet,
    uri: `sip:${b.sip.address}:${b.sip.port}`,
    state: 'active',
    rweight: Math.max(1, Math.round((100 * (caps[i] ?? 1)) / max)),
    duid: b.id,
  }));
}

function member(role: LabMember['role'], p: ManagedProcess, endpoints: readonly Endpoint[]): LabMember {
  return { name: p.name, role, pid: p.pid, log: p.logFile, endpoints };
}

async function waitBound(p: ManagedProcess, ep: Endpoint, timeoutMs = 20000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await isBound(ep))) {
    if (!p.isRunning()) throw new Error(`${p.name} exited during start-up:\n${p.tail(20)}`);
    if (Date.now() > deadline)
      throw new Error(`${p.name} did not bind ${ep.address}:${ep.port} in time:\n${p.tail(20)}`);
    await sleep(50);
  }
}

export interface StartLabOptions extends LabOptions {
  readonly dir?: string;
  /** Keep the processes running after this Node process exits (`lab up`). */
  readonly detach?: boolean;
  /** Start a sipweigh agent beside each backend (default true). */
  readonly agents?: boolean;
  /** The LB's list at start (default: proportional to capacity). */
  readonly initialWeights?: 'capacity' | 'equal';
  /** Start `sipweigh controller` on the lab's config, closing the loop (default false). */
  readonly controller?: boolean;
  /**
   * The lab controller learns each backend's capacity (`scoring.capacity.learn: true`), the configured
   * capacities being its priors: the setting for a pool nobody measured (default false: taken as told).
   */
  readonly learnCapacity?: boolean;
  readonly shmMb?: number;
  /**
   * The Kamailio binary of the LB and the backends (default kamailioBinary(): SIPWEIGH_KAMAILIO, else
   * `kamailio` on the PATH); the test matrix passes each installed version's here.
   */
  readonly kamailio?: string;
  /**
   * The LB's Kamailio binary when it differs from the backends' (default: `kamailio` above): the quality
   * bench's kamailio_oc runs a 6.1 LB (dispatcher alg 64) in front of the same backends as the others.
   */
  readonly lbKamailio?: string;
  /** Extra preprocessor defines for every backend (src/lab/kamailio/backend.cfg header). */
  readonly backendDefines?: Defines;
  /** Extra preprocessor defines for the LB (src/lab/kamailio/lb.cfg header), over the lab's own. */
  readonly lbDefines?: Defines;
  /**
   * The LB's SIP server (default kamailio). opensips: opensips/lab-lb.cfg on OpenSIPS 3.6, MI over
   * HTTP at the plan's RPC address (no credentials), its db_text table and destinations route under
   * `<dir>/lb/` (docs/opensips.md); `lbDefines` are Kamailio's and refused with it.
   */
  readonly lb?: LbKind;
  /**
   * Handed the lab's process group before its first process starts, so a caller can stop a lab
   * that is still starting (a bench on Ctrl-C): starting takes seconds.
   */
  readonly onGroup?: (group: ProcessGroup) => void;
}

/** One backend's Kamailio as the lab runs it; also brings back a backend a test or bench killed. */
export function startLabBackend(
  group: ProcessGroup,
  plan: LabPlan,
  be: BackendPlan,
  shmMb = 128,
  binary?: string,
  extraDefines: Defines = {},
): Promise<KamailioInstance> {
  return startKamailio(group, {
    name: `backend-${be.id}`,
    binary,
    cfg: LAB_CONFIGS.backend,
    defines: { ...backendDefines(backendSettings(plan, be)), ...extraDefines },
    shmMb,
    waitFor: [
      { transport: 'udp', ...be.sip },
      { transport: 'tcp', address: be.sip.address, port: be.rpcPort },
    ],
  });
}

/** One backend's sipweigh agent on its generated config, once its heartbeat socket is bound. */
export async function startLabAgent(
  group: ProcessGroup,
  be: BackendPlan,
  agentConfig: string,
): Promise<ManagedProcess> {
  const self = sipweighCommand();
  const p = group.spawn(`agent-${be.id}`, self.cmd, [...self.args, 'agent', '--config', agentConfig]);
  await waitBound(p, { transport: 'udp', ...be.agent });
  return p;
}

/** `sipweigh controller` on a config file, once its heartbeat socket and its API are bound. */
export async function startLabController(
  group: ProcessGroup,
  plan: LabPlan,
  config: string,
): Promise<ManagedProcess> {
  const self = sipweighCommand();
  const p = group.spawn('controller', self.cmd, [...self.args, 'controller', '--config', config]);
  await waitBound(p, { transport: 'udp', ...plan.controller.heartbeat });
  // The API comes up after the first discovery: whoever follows the lab's events connects to it next.
  await waitBound(p, { transport: 'tcp', address: plan.controller.heartbeat.address, port: LAB_API_PORT });
  return p;
}

/**
 * LB defines for what the binary's version offers beyond 5.6 (src/lab/kamailio/lb.cfg header); none
 * when its version cannot be read.
 */
function versionDefines(binary: string): Defines {
  const platform = probeKamailio(binary);
  if (!platform) return {};
  return kamailioFeatures(platform.version).retainLatencyStats ? { SW_DS_RETAIN_LATENCY_STATS: true } : {};
}

export async function startLab(opts: StartLabOptions): Promise<RunningLab> {
  const dir = opts.dir ?? DEFAULT_LAB_DIR;
  const previous = readLabState(dir);
  if (previous && previous.members.some((m) => pidAlive(m.pid))) {
    throw new Error(`a lab is already running from ${dir}: run \`sipweigh lab down\` first`);
  }
  const plan = planLab(opts);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const group = new ProcessGroup(dir);
  opts.onGroup?.(group);
  const members: LabMember[] = [];
  const uasScenario = opts.uasScenario ?? LAB_SCENARIOS.uas;
  if (!existsSync(uasScenario)) throw new Error(`UAS scenario not found: ${uasScenario}`);

  const lbKind: LbKind = opts.lb ?? 'kamailio';
  if (lbKind === 'opensips' && opts.lbDefines !== undefined) {
    throw new Error('lbDefines are Kamailio preprocessor defines: not for an OpenSIPS LB');
  }
  if (lbKind === 'opensips' && opts.lbKamailio !== undefined) {
    throw new Error('lbKamailio is the Kamailio LB binary: not for an OpenSIPS LB');
  }
  if (lbKind === 'opensips' && plan.lbs.length > 1) {
    // The DMQ replication between LB nodes is the Kamailio snippet's; the OpenSIPS lab has none.
    throw new Error('more than one LB is for a Kamailio LB only: not with an OpenSIPS LB');
  }
  // OpenSIPS LB: MI over HTTP on the plan's management socket; its files under <dir>/lb/.
  const osipsSettings: OpenSipsLbSettings = {
    sip: plan.lb.sip,
    mi: { address: plan.lb.rpc.address, port: plan.lb.rpc.port },
  };
  const osipsFiles = openSipsLbFilesAt(join(dir, 'lb'), osipsSettings);
  const listOf = (lb: LbPlan) => join(dir, lb.listFile);
  const dispatcherList = lbKind === 'opensips' ? osipsFiles.table : listOf(plan.lb);
  if (lbKind === 'kamailio') {
    // Every LB starts on the same list: the controller keeps them the same from then on.
    const initial = formatDispatcherList(initialDestinations(plan, opts.initialWeights));
    for (const lb of plan.lbs) writeAtomically(listOf(lb), initial);
  }
  const configs = writeLabConfigs(
    dir,
    plan,
    lbKind === 'opensips'
      ? { miUrl: osipsFiles.miUrl, table: osipsFiles.table, destinations: osipsFiles.destinations }
      : undefined,
    { learnCapacity: opts.learnCapacity ?? false },
  );

  try {
    // Servers first (UAS, backends), then the LB that sends them traffic.
    for (const be of plan.backends) {
      const uas = await startSipp(group, {
        name: `uas-${be.id}`,
        scenario: uasScenario,
        localIp: be.uas.address,
        localPort: be.uas.port,
        // A UAS lives as long as the lab; this bound only stops a forgotten lab (24 h).
        timeoutS: 86400,
      });
      members.push(member('uas', uas.process, [{ transport: 'udp', ...be.uas }]));
    }
    const backends: KamailioInstance[] = await Promise.all(
      plan.backends.map((be) =>
        startLabBackend(group, plan, be, opts.shmMb, opts.kamailio, opts.backendDefines),
      ),
    );
    backends.forEach((k) => members.push(member('backend', k.process, k.endpoints)));
    if (lbKind === 'opensips') {
      const lb = await startOpenSipsLb(group, {
        name: 'lb',
        settings: osipsSettings,
        destinations: initialDestinations(plan, opts.initialWeights),
        shmMb: opts.shmMb ?? 128,
      });
      members.push(member('lb', lb.process, lb.endpoints));
    } else {
      const lbBinary = opts.lbKamailio ?? opts.kamailio;
      const binaryDefines = versionDefines(lbBinary ?? kamailioBinary());
      // Side by side; should one fail, the catch below stops the others with everything else.
      const lbs = await Promise.all(
        plan.lbs.map((lb, i) =>
          startKamailio(group, {
            name: lbMemberName(plan, i),
            binary: lbBinary,
            cfg: LAB_CONFIGS.lb,
            // Admission control on, as in production: without a limit from the controller it admits every call.
            defines: {
              ...lbDefines(lbSettings(plan, listOf(lb), lb)),
              SW_ADMISSION: true,
              ...(lb.dmq ? dmqDefines(lb.dmq) : {}),
              ...binaryDefines,
              ...opts.lbDefines,
            },
            shmMb: opts.shmMb ?? 128,
            waitFor: lbEndpoints(lb),
          }),
        ),
      );
      lbs.forEach((k) => members.push(member('lb', k.process, k.endpoints)));
    }
    if (opts.agents ?? true) {
      // Side by side: each is a Node start-up of a second or more on a busy machine.
      const agents = await Promise.all(
        plan.backends.map(async (be) => {
          const agentFile = configs.agents[be.id];
          return agentFile ? { be, p: await startLabAgent(group, be, agentFile) } : undefined;
        }),
      );
      for (const a of agents) {
        if (a) members.push(member('agent', a.p, [{ transport: 'udp', ...a.be.agent }]));
      }
    }
    if (opts.controller) {
      const p = await startLabController(group, plan, configs.controller);
      members.push(member('controller', p, [{ transport: 'udp', ...plan.controller.heartbeat }]));
    }
  } catch (e) {
    await group.stopAll();
    throw e;
  }

  const lbRpcUrl =
    lbKind === 'opensips' ? osipsFiles.miUrl : `http://${plan.lb.rpc.address}:${plan.lb.rpc.port}/RPC`;
  const state: LabState = {
    version: 1,
    dir,
    started_at: new Date().toISOString(),
    plan,
    dispatcher_list: dispatcherList,
    lb_rpc_url: lbRpcUrl,
    lb_kind: lbKind,
    configs,
    members,
    lbs: plan.lbs.map((lb, i) => ({
      name: lb.name,
      member: lbMemberName(plan, i),
      rpc_url: i === 0 ? lbRpcUrl : `http://${lb.rpc.address}:${lb.rpc.port}/RPC`,
      dispatcher_list: i === 0 ? dispatcherList : listOf(lb),
      dmq: lb.dmq ? `sip:${lb.dmq.sip.address}:${lb.dmq.sip.port}` : null,
    })),
  };
  writeAtomically(stateFile(dir), `${JSON.stringify(state, null, 2)}\n`);
  if (opts.detach) group.processes.forEach((p) => group.release(p));
  return {
    state,
    group,
    stop: async () => {
      await group.stopAll();
      rmSync(stateFile(dir), { force: true });
    },
  };
}

export interface MemberStatus extends LabMember {
  readonly running: boolean;
  readonly bound: boolean;
}

export async function labStatus(
  dir = DEFAULT_LAB_DIR,
): Promise<{ state: LabState; members: MemberStatus[] } | undefined> {
  const state = readLabState(dir);
  if (!state) return undefined;
  const members = await Promise.all(
    state.members.map(async (m) => {
      const running = pidAlive(m.pid);
      const bound = running && (await Promise.all(m.endpoints.map(isBound))).every(Boolean);
      return { ...m, running, bound };
    }),
  );
  return { state, members };
}

/** Stops every member by PID (reverse start order). Returns the members that would not stop. */
export async function stopLab(dir = DEFAULT_LAB_DIR): Promise<LabMember[]> {
  const state = readLabState(dir);
  if (!state) return [];
  const stuck: LabMember[] = [];
  for (const m of [...state.members].reverse()) {
    if (!(await stopPid(m.pid))) stuck.push(m);
  }
  if (stuck.length === 0) rmSync(stateFile(dir), { force: true });
  return stuck;
}
