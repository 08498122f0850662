/**
 * The admission-control tests' topology, on the admission block 127.8.x.x (the lab plan with net 8):
 * the shipped src/lab/kamailio/lb.cfg with SW_ADMISSION at 127.8.0.10, backends of emulated capacity
 * (backend.cfg) at 127.8.0.11+, a sipp UAS behind each at 127.8.1.11+, clients at 127.8.0.5.
 * startLab() cannot pass extra LB defines, so this composes the same parts (plan, defines, list).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatDispatcherList } from '../../src/kamailio/dispatcher-list.js';
import { KamailioRpcClient } from '../../src/kamailio/rpc.js';
import { backendDefines, lbDefines } from '../../src/lab/defines.js';
import { startKamailio, type Defines } from '../../src/lab/kamailio.js';
import {
  backendSettings,
  initialDestinations,
  LAB_CONFIGS,
  LAB_SCENARIOS,
  lbSettings,
} from '../../src/lab/lab.js';
import { ProcessGroup } from '../../src/lab/processes.js';
import { startSipp } from '../../src/lab/sipp.js';
import { planLab, type LabPlan } from '../../src/lab/topology.js';
import { fetchStats, type HttpRpcOptions, type Stats } from './dataplane-helpers.js';

export const ADMISSION_NET = 8;
/** The load generator's address (the lab plan's client). */
export const CLIENT_IP = `127.${ADMISSION_NET}.0.5`;

export interface AdmissionLab {
  readonly group: ProcessGroup;
  readonly plan: LabPlan;
  readonly lb: { readonly address: string; readonly port: number };
  readonly rpc: KamailioRpcClient;
  /** Core and script counters of the LB. */
  stats(): Promise<Stats>;
  stop(): Promise<void>;
}

export interface AdmissionLabOptions {
  /** Emulated capacity per backend, calls/s (4 workers each). */
  readonly capacities: readonly number[];
  /** Extra lb.cfg defines; SW_ADMISSION is on unless `{ SW_ADMISSION: false }`. */
  readonly lbDefines?: Defines;
  readonly label: string;
  /** Second octet of the lab's addresses (ADMISSION_NET unless given). */
  readonly net?: number;
  /** The Kamailio binary (default kamailioBinary()); the test matrix passes each version's. */
  readonly kamailio?: string;
}

export async function startAdmissionLab(opts: AdmissionLabOptions): Promise<AdmissionLab> {
  const dir = mkdtempSync(join(tmpdir(), `sipweigh-admission-${opts.label}-`));
  mkdirSync(dir, { recursive: true });
  const group = new ProcessGroup(dir);
  const plan = planLab({
    backends: opts.capacities.length,
    capacities: opts.capacities,
    net: opts.net ?? ADMISSION_NET,
  });
  const list = join(dir, 'dispatcher.list');
  writeFileSync(list, formatDispatcherList(initialDestinations(plan)));
  const rpc = new KamailioRpcClient({
    url: `http://${plan.lb.rpc.address}:${plan.lb.rpc.port}/RPC`,
    username: plan.lb.rpc.username,
    password: plan.lb.rpc.password,
    deadlineMs: 5000,
  });
  try {
    for (const be of plan.backends) {
      await startSipp(group, {
        name: `uas-${be.id}`,
        scenario: LAB_SCENARIOS.uas,
        localIp: be.uas.address,
        localPort: be.uas.port,
        timeoutS: 900,
      });
    }
    await Promise.all(
      plan.backends.map((be) =>
        startKamailio(group, {
          name: `backend-${be.id}`,
          binary: opts.kamailio,
          cfg: LAB_CONFIGS.backend,
          defines: backendDefines(backendSettings(plan, be)),
          // Overload runs: with -m 64 shared memory ran out ~20 s into a 110 % run (KAMAILIO-NOTES).
          shmMb: 256,
          waitFor: [{ transport: 'udp', ...be.sip }],
        }),
      ),
    );
    await startKamailio(group, {
      name: 'lb',
      binary: opts.kamailio,
      cfg: LAB_CONFIGS.lb,
      defines: { ...lbDefines(lbSettings(plan, list)), SW_ADMISSION: true, ...opts.lbDefines },
      shmMb: 256,
      waitFor: [
        { transport: 'udp', ...plan.lb.sip },
        { transport: 'tcp', address: plan.lb.rpc.address, port: plan.lb.rpc.port },
      ],
    });
  } catch (e) {
    rpc.close();
    await group.stopAll();
    throw e;
  }
  // The lab allows JSON-RPC from 127.0.0.1 (the kernel's default source on lo) and the LB's address.
  const access: HttpRpcOptions = {
    localAddress: '127.0.0.1',
    auth: { user: plan.lb.rpc.username, password: plan.lb.rpc.password },
  };
  return {
    group,
    plan,
    lb: plan.lb.sip,
    rpc,
    stats: () => fetchStats(`http://${plan.lb.rpc.address}:${plan.lb.rpc.port}/RPC`, access),
    stop: async () => {
      rpc.close();
      await group.stopAll();
    },
  };
}
