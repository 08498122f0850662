import { Command } from 'commander';
import { runAgent } from '../../agent/index.js';
import type { AgentConfig, ControllerConfig } from '../../config/types.js';
import { readFileSync } from 'node:fs';
import { formatStatus, type ControllerStatus } from '../../controller/status.js';
import { addLogSecrets, createLogger } from '../../util/logger.js';
import { CliError, EXIT } from '../exit-codes.js';
import { runControllerDaemon } from './controller-daemon.js';
import { loadOrExplain } from './validate.js';

export function controllerCommand(): Command {
  return new Command('controller')
    .description('run the controller: discover backends, probe them, score load, push dispatcher weights')
    .requiredOption('-c, --config <file>', 'controller config (YAML or JSON)')
    .addHelpText(
      'after',
      '\nSignals: SIGHUP re-reads the config file (refused whole if invalid: the running config stays);\n' +
        'SIGTERM/SIGINT stop it; the LB keeps the last weights it was given (fail-static).',
    )
    .action(async (opts: { config: string }) => {
      const config = loadOrExplain(opts.config, 'controller') as ControllerConfig;
      const logger = createLogger('sipweigh-controller', config.logging.level);
      await runControllerDaemon(opts.config, config, logger);
    });
}

export function agentCommand(): Command {
  return new Command('agent')
    .description('run the agent on a backend host: answer heartbeat probes with load reports')
    .requiredOption('-c, --config <file>', 'agent config (YAML or JSON)')
    .addHelpText(
      'after',
      '\nSignals: SIGTERM/SIGINT send bye (the controller drains this backend at once) and stop;\n' +
        'SIGUSR1 drains (no new calls, dialogs continue), SIGUSR2 undrains.',
    )
    .action(async (opts: { config: string }) => {
      const config = loadOrExplain(opts.config, 'agent') as AgentConfig;
      addLogSecrets(config.key, config.kamailio_rpc?.password);
      const logger = createLogger('sipweigh-agent', config.logging.level);
      let agent;
      try {
        agent = await runAgent(config, logger);
      } catch (e) {
        throw new CliError(`agent could not start: ${(e as Error).message}`, EXIT.failure);
      }
      await agent.closed;
    });
}

function readStatusFile(file: string): ControllerStatus {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CliError(
      `cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): is the controller running with status_file set?`,
      EXIT.absent,
    );
  }
  let status: ControllerStatus;
  try {
    status = JSON.parse(text) as ControllerStatus;
  } catch {
    throw new CliError(`${file} is not a sipweigh status file (not JSON)`, EXIT.failure);
  }
  if (status.version !== 1 || !Array.isArray(status.sets) || !Array.isArray(status.lb_nodes)) {
    throw new CliError(`${file} is not a sipweigh status file (version 1)`, EXIT.failure);
  }
  // Written every second by a live controller: an old one means it stopped.
  const age = Date.now() - Date.parse(status.at);
  if (age > 5000)
    process.stderr.write(
      `sipweigh: ${file} is ${Math.round(age / 1000)} s old: is the controller still running?\n`,
    );
  return status;
}

/** Commands that talk to a running controller's API; they arrive with it. */
export function apiCommands(): Command[] {
  const notYet = () => {
    throw new CliError(
      'this command needs the controller HTTP API, which is not part of this version yet',
      EXIT.failure,
    );
  };
  return [
    new Command('status')
      .description('show backends, weights and LB nodes from a running controller')
      .option('--file <path>', "the controller's status file (its config's status_file)")
      .option('--json', 'machine-readable output')
      .action((opts: { file?: string; json?: boolean }) => {
        if (opts.file === undefined) {
          throw new CliError(
            'the controller HTTP API is not part of this version yet: pass --file with the status_file of its config',
            EXIT.usage,
          );
        }
        const status = readStatusFile(opts.file);
        process.stdout.write(opts.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
      }),
    new Command('drain')
      .description('stop new calls to a backend (its dialogs continue)')
      .argument('<backend>', 'backend id')
      .action(notYet),
    new Command('undrain')
      .description('return a drained backend to rotation (with slow start)')
      .argument('<backend>', 'backend id')
      .action(notYet),
  ];
}
