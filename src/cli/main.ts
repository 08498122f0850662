#!/usr/bin/env node
/**
 * `sipweigh`: one binary for the controller, the agent, the lab and the operator's tools.
 * Each subcommand lives in commands/; this file only assembles them and maps errors to exit codes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { PACKAGE_ROOT } from '../util/package-root.js';
import { agentCommand, controllerCommand } from './commands/daemons.js';
import { keysCommand } from './commands/keys.js';
import { labCommand } from './commands/lab.js';
import { operatorCommands } from './commands/operator.js';
import { validateCommand } from './commands/validate.js';
import { CliError, EXIT } from './exit-codes.js';

const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command('sipweigh')
    .description('adaptive, transparent SIP load balancing for Kamailio')
    .version(pkg.version)
    .showHelpAfterError()
    .exitOverride();
  for (const cmd of [
    controllerCommand(),
    agentCommand(),
    validateCommand(),
    keysCommand(),
    labCommand(),
    ...operatorCommands(),
  ]) {
    program.addCommand(cmd.exitOverride());
  }
  for (const sub of program.commands) for (const c of sub.commands) c.exitOverride();
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync([...argv], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version come through here too, with exit code 0.
      return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (e instanceof CliError) {
      process.stderr.write(`sipweigh: ${e.message}\n`);
      return e.exitCode;
    }
    process.stderr.write(`sipweigh: ${(e as Error).stack ?? String(e)}\n`);
    return EXIT.failure;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
