import { Command, Option } from 'commander';
import { DEFAULT_LAB_DIR, labStatus, startLab, stopLab } from '../../lab/lab.js';
import { LAB_LIMITS } from '../../lab/topology.js';
import { LB_KINDS, type LbKind } from '../../lab/opensips.js';
import { CliError, EXIT } from '../exit-codes.js';

function parseCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new CliError(`not a whole number: ${value}`, EXIT.usage);
  return n;
}

function parseCapacities(value: string): number[] {
  const caps = value.split(',').map((v) => Number(v.trim()));
  if (caps.some((c) => !(c > 0)))
    throw new CliError(`--capacity takes calls/s > 0, comma-separated: ${value}`, EXIT.usage);
  return caps;
}

/** Which of `lab up`'s options the operator gave on the command line (not defaults). */
export interface LabUpChoices {
  readonly capacity: boolean;
  readonly workers: boolean;
  /** false: --no-agents. */
  readonly agents: boolean;
  /** false: --no-controller. */
  readonly controller: boolean;
  /** --lbs: how many LB nodes. */
  readonly lbs: number;
  /** --lb: the LB's SIP server. */
  readonly lb: LbKind;
}

/**
 * Why `lab up` refuses a combination of options, naming them, or null (pure). An option that would
 * be accepted and then ignored, or that would silently turn off something else, is refused instead.
 */
export function labUpRefusal(c: LabUpChoices): string | null {
  if (c.workers && !c.capacity) {
    return '--workers sets the UDP workers of an emulated backend: give --capacity too (without it the backends are not emulated and --workers would do nothing)';
  }
  if (!c.agents && c.controller) {
    return '--no-agents leaves the controller without reports (it would take every backend for down): add --no-controller to run the lab without both';
  }
  if (c.lbs < LAB_LIMITS.minLbs || c.lbs > LAB_LIMITS.maxLbs) {
    // At most 4: the lab LB config takes four DMQ peers (SW_DMQ_NOTIFY1..4), the other nodes.
    return `--lbs must be ${LAB_LIMITS.minLbs}..${LAB_LIMITS.maxLbs}, got ${c.lbs}`;
  }
  if (c.lbs > 1 && c.lb === 'opensips') {
    return `--lbs ${c.lbs} starts Kamailio LBs with DMQ between them; the lab has no OpenSIPS cluster: give --lb opensips with one LB, or drop --lb opensips`;
  }
  return null;
}

const dirOption = () => new Option('--dir <dir>', 'lab state and run directory').default(DEFAULT_LAB_DIR);

export function labCommand(): Command {
  const lab = new Command('lab').description('a local lab on loopback: Kamailio LB, backends and sipp UAS');

  lab
    .command('up')
    .description('start the lab and leave it running (stop it with `lab down`)')
    .option(
      '--backends <n>',
      `number of backends (${LAB_LIMITS.minBackends}-${LAB_LIMITS.maxBackends})`,
      parseCount,
      2,
    )
    .option(
      '--capacity <cps>',
      'emulated capacity in calls/s: one value for all backends, or one per backend (e.g. 50,100,200)',
      parseCapacities,
    )
    .option('--workers <n>', 'UDP workers of each emulated backend (with --capacity)', parseCount, 4)
    .option('--uas-scenario <file>', 'sipp scenario run behind every backend instead of the answering UAS')
    .option('--no-agents', 'do not start a sipweigh agent beside each backend (needs --no-controller)')
    .option('--no-controller', 'do not start `sipweigh controller` (weights stay as the lab wrote them)')
    .option(
      '--lbs <n>',
      `number of Kamailio LB nodes (${LAB_LIMITS.minLbs}-${LAB_LIMITS.maxLbs}), each on its own address, DMQ between them`,
      parseCount,
      1,
    )
    .option(
      '--net <n>',
      "second octet of the lab's loopback addresses (127.<n>.0.x), to run labs side by side",
      parseCount,
      0,
    )
    .addOption(
      new Option('--lb <kind>', 'the LB: kamailio, or opensips (OpenSIPS 3.6, docs/opensips.md)')
        .choices([...LB_KINDS])
        .default('kamailio'),
    )
    .addOption(dirOption())
    .option('--json', 'print every address and port as one JSON object')
    .action(
      async (
        opts: {
          backends: number;
          capacity?: number[];
          workers: number;
          uasScenario?: string;
          agents: boolean;
          controller: boolean;
          lb: LbKind;
          lbs: number;
          net: number;
          dir: string;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        const refusal = labUpRefusal({
          capacity: opts.capacity !== undefined,
          workers: cmd.getOptionValueSource('workers') === 'cli',
          agents: opts.agents,
          controller: opts.controller,
          lbs: opts.lbs,
          lb: opts.lb,
        });
        if (refusal) throw new CliError(`lab up: ${refusal}`, EXIT.usage);
        const running = await startLab({
          backends: opts.backends,
          ...(opts.capacity ? { capacities: opts.capacity } : {}),
          workers: opts.workers,
          agents: opts.agents,
          controller: opts.controller,
          lb: opts.lb,
          lbs: opts.lbs,
          net: opts.net,
          ...(opts.uasScenario ? { uasScenario: opts.uasScenario } : {}),
          dir: opts.dir,
          detach: true,
        }).catch((e: unknown) => {
          // Start-up problems (a port in use, a config Kamailio refuses) are the operator's to fix:
          // the message carries the process's own last log lines; a stack trace would add nothing.
          throw new CliError(`lab up failed: ${(e as Error).message}`, EXIT.failure);
        });
        const s = running.state;
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(s)}\n`);
          return;
        }
        const lines = [
          `lab up (${s.dir})`,
          ...(s.lb_kind === 'opensips'
            ? [
                `  LB         OpenSIPS sip:${s.plan.lb.sip.address}:${s.plan.lb.sip.port} (udp, tcp)   MI over HTTP ${s.lb_rpc_url}`,
              ]
            : s.plan.lbs.map(
                (lb, i) =>
                  `  ${(s.plan.lbs.length === 1 ? 'LB' : lb.name).padEnd(10)} sip:${lb.sip.address}:${lb.sip.port} (udp, tcp)   JSON-RPC ${s.lbs?.[i]?.rpc_url ?? s.lb_rpc_url} (user ${lb.rpc.username})` +
                  (lb.dmq ? `   DMQ sip:${lb.dmq.sip.address}:${lb.dmq.sip.port}` : ''),
              )),
          ...s.plan.backends.map(
            (b) =>
              `  ${b.id.padEnd(10)} sip:${b.sip.address}:${b.sip.port}   JSON-RPC http://${b.sip.address}:${b.rpcPort}/RPC   UAS ${b.uas.address}:${b.uas.port}` +
              (opts.agents ? `   agent udp:${b.agent.address}:${b.agent.port}` : '') +
              (b.emulation
                ? `   emulated ${b.emulation.callsPerSecond} calls/s (${b.emulation.workers} workers × ${b.emulation.delayUs / 1000} ms)`
                : ''),
          ),
          `  configs    ${s.configs.controller} and agent-<id>.yaml beside it`,
          `  send calls from ${s.plan.client.address} to ${s.plan.lbs.map((lb) => `sip:${lb.sip.address}:${lb.sip.port}`).join(' or ')}; stop with: sipweigh lab down`,
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
      },
    );

  lab
    .command('status')
    .description('show whether each lab process is running and bound')
    .addOption(dirOption())
    .option('--json', 'print the state as JSON')
    .action(async (opts: { dir: string; json?: boolean }) => {
      const status = await labStatus(opts.dir);
      if (!status) {
        if (opts.json) process.stdout.write(`${JSON.stringify({ running: false, dir: opts.dir })}\n`);
        throw new CliError(`no lab in ${opts.dir}`, EXIT.absent);
      }
      const healthy = status.members.every((m) => m.running && m.bound);
      if (opts.json) {
        process.stdout.write(
          `${JSON.stringify({ running: healthy, ...status.state, members: status.members })}\n`,
        );
      } else {
        for (const m of status.members) {
          const what = m.running ? (m.bound ? 'up' : 'running, not bound') : 'DOWN';
          process.stdout.write(`${m.name.padEnd(14)} pid ${String(m.pid).padEnd(8)} ${what}\n`);
        }
      }
      if (!healthy) process.exitCode = EXIT.failure;
    });

  lab
    .command('down')
    .description('stop every lab process by PID')
    .addOption(dirOption())
    .action(async (opts: { dir: string }) => {
      const stuck = await stopLab(opts.dir);
      if (stuck.length > 0)
        throw new CliError(`could not stop: ${stuck.map((m) => `${m.name} (pid ${m.pid})`).join(', ')}`);
      process.stdout.write('lab down\n');
    });

  return lab;
}
