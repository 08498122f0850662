import { Command } from 'commander';
import { runAgent } from '../../agent/index.js';
import { loadAgentConfig } from '../../config/load.js';
import type { AgentConfig, ControllerConfig } from '../../config/types.js';
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
        'SIGUSR1 drains (no new calls, dialogs continue), SIGUSR2 undrains; SIGHUP re-reads the config\n' +
        'and puts new keys (key, previous_key) in force without a restart (a file that changes more is refused).',
    )
    .action(async (opts: { config: string }) => {
      const secrets = (c: AgentConfig) => addLogSecrets(c.key, c.previous_key, c.kamailio_rpc?.password);
      const config = loadOrExplain(opts.config, 'agent') as AgentConfig;
      secrets(config);
      const logger = createLogger('sipweigh-agent', config.logging.level);
      const reread = () => {
        const next = loadAgentConfig(opts.config);
        secrets(next);
        return next;
      };
      let agent;
      try {
        agent = await runAgent(config, logger, { reread });
      } catch (e) {
        throw new CliError(`agent could not start: ${(e as Error).message}`, EXIT.failure);
      }
      await agent.closed;
    });
}
