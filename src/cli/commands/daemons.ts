import { Command } from 'commander';
import { CliError, EXIT } from '../exit-codes.js';
import { loadOrExplain } from './validate.js';

export function controllerCommand(): Command {
  return new Command('controller')
    .description('run the controller: discover backends, probe them, score load, push dispatcher weights')
    .requiredOption('-c, --config <file>', 'controller config (YAML or JSON)')
    .action((opts: { config: string }) => {
      loadOrExplain(opts.config, 'controller');
      throw new CliError('the controller loop is not part of this version yet (config is valid)', EXIT.failure);
    });
}

export function agentCommand(): Command {
  return new Command('agent')
    .description('run the agent on a backend host: answer heartbeat probes with load reports')
    .requiredOption('-c, --config <file>', 'agent config (YAML or JSON)')
    .action((opts: { config: string }) => {
      loadOrExplain(opts.config, 'agent');
      throw new CliError('the agent is not part of this version yet (config is valid)', EXIT.failure);
    });
}

/** Commands that talk to a running controller's API; they arrive with it. */
export function apiCommands(): Command[] {
  const notYet = () => {
    throw new CliError('this command needs the controller HTTP API, which is not part of this version yet', EXIT.failure);
  };
  return [
    new Command('status').description("show backends, weights and LB nodes from a running controller").option('--json', 'machine-readable output').action(notYet),
    new Command('drain').description('stop new calls to a backend (its dialogs continue)').argument('<backend>', 'backend id').action(notYet),
    new Command('undrain').description('return a drained backend to rotation (with slow start)').argument('<backend>', 'backend id').action(notYet),
  ];
}
