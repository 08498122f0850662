/**
 * The operator's commands against a running controller's HTTP API: `status`, `drain`, `undrain`,
 * `reload`. `status --file` still reads the status file offline (no API needed).
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { formatStatus, type ControllerStatus } from '../../controller/status.js';
import { CliError, EXIT } from '../exit-codes.js';
import { callApi, DEFAULT_API_URL, resolveTarget, type TargetOptions } from './api-client.js';

export interface TargetFlags {
  api?: string;
  tokenFile?: string;
  config?: string;
}

function withTarget(cmd: Command): Command {
  return cmd
    .option(
      '--api <url>',
      `controller API base URL (default: from --config, the running lab, or ${DEFAULT_API_URL})`,
    )
    .option('--token-file <file>', 'file holding the API bearer token (default: the config’s api.token_file)')
    .option('-c, --config <file>', 'the controller’s config: its api section says where the API listens');
}

const targetOf = (o: TargetFlags): TargetOptions => ({
  ...(o.api !== undefined ? { api: o.api } : {}),
  ...(o.tokenFile !== undefined ? { tokenFile: o.tokenFile } : {}),
  ...(o.config !== undefined ? { config: o.config } : {}),
});

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
  checkStatus(status, file);
  // Written every second by a live controller: an old one means it stopped.
  const age = Date.now() - Date.parse(status.at);
  if (age > 5000)
    process.stderr.write(
      `sipweigh: ${file} is ${Math.round(age / 1000)} s old: is the controller still running?\n`,
    );
  return status;
}

function checkStatus(status: ControllerStatus, from: string, what = 'status file'): void {
  if (status?.version !== 1 || !Array.isArray(status.sets) || !Array.isArray(status.lb_nodes)) {
    throw new CliError(`${from} is not a sipweigh ${what} (version 1)`, EXIT.failure);
  }
}

/**
 * The API options given together with `status --file`, which reads the file and never the API
 * (pure): they would be ignored, so the command refuses them by name.
 */
export function apiOptionsBesideFile(o: TargetFlags): string[] {
  return [
    ...(o.api !== undefined ? ['--api'] : []),
    ...(o.tokenFile !== undefined ? ['--token-file'] : []),
    ...(o.config !== undefined ? ['--config'] : []),
  ];
}

const print = (json: boolean | undefined, value: unknown, text: string): void => {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : text);
};

function statusCommand(): Command {
  return withTarget(new Command('status'))
    .description('show backends, weights and LB nodes of a running controller (its HTTP API)')
    .option(
      '--file <path>',
      'read the controller’s status file instead (its config’s status_file; no API needed)',
    )
    .option('--json', 'machine-readable output')
    .action(async (opts: TargetFlags & { file?: string; json?: boolean }) => {
      if (opts.file !== undefined) {
        const ignored = apiOptionsBesideFile(opts);
        if (ignored.length > 0) {
          throw new CliError(
            `status: --file reads the status file, not the API: drop ${ignored.join(', ')} (or --file to ask the API)`,
            EXIT.usage,
          );
        }
        const status = readStatusFile(opts.file);
        return print(opts.json, status, formatStatus(status));
      }
      const target = resolveTarget(targetOf(opts));
      const r = await callApi(target, 'GET', '/api/v1/status');
      if (r.status !== 200)
        throw new CliError(`${target.url}/api/v1/status answered ${r.status}`, EXIT.failure);
      const status = r.body as ControllerStatus;
      checkStatus(status, `${target.url}/api/v1/status`, 'status');
      print(opts.json, status, formatStatus(status));
    });
}

interface BackendAnswer {
  id: string;
  state: string;
  drained: boolean;
  weights: Record<string, number | null>;
}

function drainCommand(name: 'drain' | 'undrain'): Command {
  const on = name === 'drain';
  const cmd = withTarget(new Command(name))
    .description(
      on
        ? 'stop new calls to a backend (its dialogs continue)'
        : 'return a drained backend to rotation (with slow start)',
    )
    .argument('<backend>', 'backend id');
  if (on) cmd.option('--reason <text>', 'why, for the controller’s log (at most 200 characters)');
  return cmd
    .option('--json', 'print the backend as the API returns it')
    .action(async (backend: string, opts: TargetFlags & { reason?: string; json?: boolean }) => {
      const target = resolveTarget(targetOf(opts));
      const path = `/api/v1/backends/${encodeURIComponent(backend)}/${name}`;
      const r = await callApi(target, 'POST', path, opts.reason !== undefined ? { reason: opts.reason } : {});
      const error = (r.body as { error?: string })?.error;
      if (r.status === 404) throw new CliError(`no backend ${backend} at ${target.url}`, EXIT.absent);
      if (r.status !== 200) throw new CliError(`${name} refused: ${error ?? r.status}`, EXIT.usage);
      const b = r.body as BackendAnswer;
      const text = on
        ? `${b.id}: drained (state ${b.state}); new calls go elsewhere at the next push, its dialogs continue\n`
        : `${b.id}: undrained (state ${b.state}); it returns to rotation with slow start\n`;
      print(opts.json, b, text);
    });
}

interface ReloadAnswer {
  reloaded: boolean;
  error?: string;
  changes?: {
    backends: { added: string[]; removed: string[]; changed: string[] };
    scoring: string[];
    admission: boolean;
    schedules: boolean;
    logging_level: { from: string; to: string } | null;
    status_file: boolean;
    api_auth: boolean;
    heartbeat_keys: boolean;
  };
}

export function describeChanges(c: NonNullable<ReloadAnswer['changes']>): string {
  const parts: string[] = [];
  const list = (what: string, ids: string[]) => ids.length > 0 && parts.push(`${what} ${ids.join(', ')}`);
  list('backends added:', c.backends.added);
  list('removed:', c.backends.removed);
  list('changed:', c.backends.changed);
  if (c.scoring.length > 0) parts.push(`scoring: ${c.scoring.join(', ')}`);
  if (c.admission) parts.push('admission');
  if (c.schedules) parts.push('schedules');
  if (c.logging_level) parts.push(`log level ${c.logging_level.from} -> ${c.logging_level.to}`);
  if (c.status_file) parts.push('status file');
  if (c.api_auth) parts.push('API token / open reads');
  if (c.heartbeat_keys) parts.push('heartbeat master keys');
  return parts.length === 0 ? 'nothing changed' : parts.join('; ');
}

function reloadCommand(): Command {
  return withTarget(new Command('reload'))
    .description('make the controller re-read its config file (as SIGHUP does); refused whole if invalid')
    .option('--json', 'print the API’s answer')
    .action(async (opts: TargetFlags & { json?: boolean }) => {
      const target = resolveTarget(targetOf(opts));
      const r = await callApi(target, 'POST', '/api/v1/reload');
      const a = r.body as ReloadAnswer;
      if (r.status === 400 && a?.reloaded === false) {
        if (opts.json) process.stdout.write(`${JSON.stringify(a, null, 2)}\n`);
        throw new CliError(`reload refused; the running config stays:\n${a.error ?? ''}`, EXIT.badConfig);
      }
      if (r.status !== 200 || !a?.changes)
        throw new CliError(`reload: unexpected answer ${r.status}`, EXIT.failure);
      print(opts.json, a, `reloaded: ${describeChanges(a.changes)}\n`);
    });
}

export function operatorCommands(): Command[] {
  return [statusCommand(), drainCommand('drain'), drainCommand('undrain'), reloadCommand()];
}
