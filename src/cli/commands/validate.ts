import { Command, Option } from 'commander';
import { ConfigError } from '../../config/errors.js';
import { loadConfig } from '../../config/load.js';
import type { AnyConfig, ConfigKind } from '../../config/types.js';
import { CliError, EXIT } from '../exit-codes.js';

function summary(config: AnyConfig): string {
  if (config.kind === 'agent') {
    return `agent config for backend ${config.backend_id} (set ${config.set}, capacity ${config.capacity} calls/s)`;
  }
  const backends = config.sets.reduce((n, s) => n + s.backends.length, 0);
  return `controller config: ${config.lb_nodes.length} LB node(s), ${config.sets.length} set(s), ${backends} backend(s)`;
}

/** Loads a config or turns its refusal into an operator-facing CliError (exit code badConfig). */
export function loadOrExplain(file: string, kind?: ConfigKind): AnyConfig {
  try {
    return loadConfig(file, kind);
  } catch (e) {
    if (e instanceof ConfigError) {
      const n = e.issues.length;
      throw new CliError(
        `${e.message}\n${file}: refused (${n} problem${n === 1 ? '' : 's'}); nothing was started or changed`,
        EXIT.badConfig,
      );
    }
    throw e;
  }
}

export function validateCommand(): Command {
  return new Command('validate')
    .description('check a controller or agent config file (YAML or JSON) without running anything')
    .argument('<file>', 'config file (.yaml, .yml or .json)')
    .addOption(new Option('--kind <kind>', 'require this kind of config').choices(['controller', 'agent']))
    .addHelpText(
      'after',
      `\nExit status: 0 valid, ${EXIT.badConfig} refused (each problem printed as FILE:LINE:COL: FIELD: what was expected).`,
    )
    .action((file: string, opts: { kind?: ConfigKind }) => {
      const config = loadOrExplain(file, opts.kind);
      process.stdout.write(`${file}: ok, ${summary(config)}\n`);
    });
}
