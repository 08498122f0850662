import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { deriveBackendKey, MIN_MASTER_KEY_BYTES, parseHexKey } from '../../heartbeat/keys.js';
import { CliError, EXIT } from '../exit-codes.js';

export function keysCommand(): Command {
  const keys = new Command('keys').description(
    'heartbeat keys: a master key for the controller, a derived key per backend',
  );

  keys
    .command('generate')
    .description('print a new random master key (hex) for the controller')
    .action(() => {
      process.stdout.write(`${randomBytes(MIN_MASTER_KEY_BYTES).toString('hex')}\n`);
    });

  keys
    .command('derive')
    .description(
      "print a backend's derived key (hex) for its agent config; the master key never leaves the controller",
    )
    .requiredOption('--master-file <file>', 'file holding the master key (hex)')
    .requiredOption('--backend <id>', 'backend id, as in the configs')
    .action((opts: { masterFile: string; backend: string }) => {
      try {
        const master = parseHexKey(readFileSync(opts.masterFile, 'utf8'), 'master key', MIN_MASTER_KEY_BYTES);
        process.stdout.write(`${deriveBackendKey(master, opts.backend).toString('hex')}\n`);
      } catch (e) {
        throw new CliError(`keys derive: ${(e as Error).message}`, EXIT.usage);
      }
    });
  return keys;
}
