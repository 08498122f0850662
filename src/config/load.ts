/**
 * Reads a YAML or JSON config file, validates it against its JSON Schema and resolves what the
 * schema cannot check (secrets in files, cross-field rules). Either a typed config or a ConfigError
 * naming the file, the field path (with line and column) and what was expected. Pure of side effects
 * beyond reading files: nothing is started or changed.
 */
import { readFileSync } from 'node:fs';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import { validateDetailed } from 'node-cron';
import { ConfigError, jsonPointerToPath, pointerSegments, type ConfigIssue } from './errors.js';
import {
  DEFAULT_SCORING_PARAMS,
  ScoringParamsError,
  validateScoringParams,
  type ScoringParams,
  type SignalParams,
} from '../scoring/params.js';
import { validatorFor, type ErrorObject } from './schema-registry.js';
import type {
  AdmissionConfig,
  ApiConfig,
  AgentConfig,
  AnyConfig,
  ConfigKind,
  ControllerConfig,
  DispatcherListConfig,
  KamailioRpcConfig,
} from './types.js';

const KINDS: readonly ConfigKind[] = ['controller', 'agent'];

interface Parsed {
  readonly data: unknown;
  readonly locate: (pointer: string) => { line: number; column: number } | undefined;
}

function parseText(file: string, text: string): Parsed {
  // JSON is a subset of YAML 1.2, but a .json file gets JSON's stricter parser and messages.
  if (extname(file).toLowerCase() === '.json') {
    try {
      return { data: JSON.parse(text) as unknown, locate: () => undefined };
    } catch (e) {
      throw new ConfigError(file, [{ path: '', message: `malformed JSON: ${(e as Error).message}` }]);
    }
  }
  const lineCounter = new LineCounter();
  const doc: Document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((err) => {
        const pos = lineCounter.linePos(err.pos[0]);
        return {
          path: '',
          message: `malformed YAML: ${err.message.split('\n')[0]}`,
          line: pos.line,
          column: pos.col,
        };
      }),
    );
  }
  const locate = (pointer: string) => {
    // Walk up to the nearest node that exists, so a missing field points at its parent.
    const segs = pointerSegments(pointer);
    for (let n = segs.length; n >= 0; n--) {
      const node = doc.getIn(segs.slice(0, n), true);
      if (isNode(node) && node.range) {
        const pos = lineCounter.linePos(node.range[0]);
        return { line: pos.line, column: pos.col };
      }
    }
    return undefined;
  };
  return { data: doc.toJS() as unknown, locate };
}

const FORMAT_NAMES: Record<string, string> = {
  ipv4: 'an IPv4 address (e.g. 127.0.0.10)',
  uri: 'a URL (e.g. http://127.0.0.10:5071/RPC)',
};

function describe(err: ErrorObject): { pointer: string; message: string } {
  const p = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'additionalProperties':
      return {
        pointer: `${err.instancePath}/${String(p.additionalProperty)}`,
        message: 'unknown field (not in the schema; check the spelling)',
      };
    case 'required':
      return {
        pointer: `${err.instancePath}/${String(p.missingProperty)}`,
        message: 'required field is missing',
      };
    case 'const':
      return { pointer: err.instancePath, message: `must be ${JSON.stringify(p.allowedValue)}` };
    case 'enum':
      return {
        pointer: err.instancePath,
        message: `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`,
      };
    case 'pattern': {
      const d = (err.parentSchema as { description?: string } | undefined)?.description;
      return { pointer: err.instancePath, message: d ? `must be ${d}` : `must match ${String(p.pattern)}` };
    }
    case 'format':
      return {
        pointer: err.instancePath,
        message: `must be ${FORMAT_NAMES[String(p.format)] ?? `a valid ${String(p.format)}`}`,
      };
    default:
      return { pointer: err.instancePath, message: err.message ?? err.keyword };
  }
}

function schemaIssues(errors: readonly ErrorObject[], locate: Parsed['locate']): ConfigIssue[] {
  const seen = new Set<string>();
  const issues: ConfigIssue[] = [];
  for (const err of errors) {
    // allErrors reports every failed branch; one line per field and message is enough.
    if (err.keyword === 'if') continue;
    const { pointer, message } = describe(err);
    const key = `${pointer} ${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const pos = locate(pointer);
    issues.push({ path: jsonPointerToPath(pointer), message, ...(pos ?? {}) });
  }
  return issues;
}

/** Reads a secret that is given inline or in a file (exactly one of the two). */
function secret(
  obj: Record<string, unknown>,
  inlineKey: string,
  fileKey: string,
  at: string,
  baseDir: string,
  issues: ConfigIssue[],
  required: boolean,
): string | undefined {
  const inline = obj[inlineKey];
  const file = obj[fileKey];
  const prefix = at ? `${at}.` : '';
  if (inline !== undefined && file !== undefined) {
    issues.push({ path: `${prefix}${fileKey}`, message: `give either ${inlineKey} or ${fileKey}, not both` });
    return undefined;
  }
  if (typeof file === 'string') {
    const path = isAbsolute(file) ? file : resolve(baseDir, file);
    try {
      const value = readFileSync(path, 'utf8').trim();
      if (!value) issues.push({ path: `${prefix}${fileKey}`, message: `file ${path} is empty` });
      return value;
    } catch (e) {
      issues.push({
        path: `${prefix}${fileKey}`,
        message: `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`,
      });
      return undefined;
    }
  }
  if (typeof inline === 'string') return inline;
  if (required)
    issues.push({ path: `${prefix}${inlineKey}`, message: `required: give ${inlineKey} or ${fileKey}` });
  return undefined;
}

const MASTER_KEY = {
  pattern: /^([0-9a-fA-F]{2}){32,64}$/,
  expected: '64 to 128 hex digits (a 32 to 64 byte key)',
};
const DERIVED_KEY = {
  pattern: /^[0-9a-fA-F]{64}$/,
  expected: '64 hex digits (a 32 byte derived key, from `sipweigh keys derive`)',
};

/** Keys read from files are checked here; inline ones were already checked by the schema. */
function hexKey(
  value: string | undefined,
  path: string,
  issues: ConfigIssue[],
  form = MASTER_KEY,
): Buffer | undefined {
  if (value === undefined) return undefined;
  if (!form.pattern.test(value)) {
    issues.push({ path, message: `must be ${form.expected}` });
    return undefined;
  }
  return Buffer.from(value, 'hex');
}

function rpc(
  raw: Record<string, unknown>,
  at: string,
  baseDir: string,
  issues: ConfigIssue[],
): KamailioRpcConfig {
  const password = secret(raw, 'password', 'password_file', at, baseDir, issues, false);
  if (password !== undefined && raw.username === undefined) {
    issues.push({ path: `${at}.username`, message: 'required when a password is given' });
  }
  const { password: _p, password_file: _f, ...rest } = raw;
  return { ...(rest as unknown as KamailioRpcConfig), ...(password !== undefined ? { password } : {}) };
}

/** Schema-valid controller data before secrets are read (the schema guarantees these shapes). */
interface RawController {
  heartbeat: Record<string, unknown>;
  schedules: { reconcile: string; timezone?: string; maintenance: { backend: string; drain?: string }[] };
  scoring: { cycle_ms: number; signals?: Record<string, Partial<SignalParams>> } & Record<string, unknown>;
  admission: AdmissionConfig;
  status_file?: string;
  api?: { listen: string; port: number; token_file?: string; read_without_token: boolean };
  lb_nodes: { name: string; rpc: Record<string, unknown>; dispatcher_list: DispatcherListConfig }[];
  sets: { id: number; backends: { id: string; agent?: unknown; ssh?: unknown }[] }[];
}

function resolveController(raw: RawController, baseDir: string, issues: ConfigIssue[]): ControllerConfig {
  const hb = raw.heartbeat;
  const current = hexKey(
    secret(hb, 'master_key', 'master_key_file', 'heartbeat', baseDir, issues, true),
    'heartbeat.master_key',
    issues,
  );
  const previous = hexKey(
    secret(hb, 'previous_master_key', 'previous_master_key_file', 'heartbeat', baseDir, issues, false),
    'heartbeat.previous_master_key',
    issues,
  );
  const {
    master_key: _a,
    master_key_file: _b,
    previous_master_key: _c,
    previous_master_key_file: _d,
    ...hbRest
  } = hb;

  const setIds = new Set<number>();
  const backendIds = new Map<string, string>();
  raw.sets.forEach((set, i) => {
    if (setIds.has(set.id)) issues.push({ path: `sets[${i}].id`, message: `duplicate set id ${set.id}` });
    setIds.add(set.id);
    set.backends.forEach((b, j) => {
      const at = `sets[${i}].backends[${j}]`;
      const prior = backendIds.get(b.id);
      if (prior)
        issues.push({ path: `${at}.id`, message: `duplicate backend id ${b.id} (also at ${prior})` });
      backendIds.set(b.id, at);
      if (!b.agent && !b.ssh)
        issues.push({ path: at, message: 'needs an agent or an ssh section to be measured' });
    });
  });
  checkSchedules(raw.schedules, backendIds, issues);
  const lbNames = new Set<string>();
  const lbNodes = raw.lb_nodes.map((lb, i) => {
    if (lbNames.has(lb.name))
      issues.push({ path: `lb_nodes[${i}].name`, message: `duplicate LB node ${lb.name}` });
    lbNames.add(lb.name);
    const rpcConfig = rpc(lb.rpc, `lb_nodes[${i}].rpc`, baseDir, issues);
    return { name: lb.name, rpc: rpcConfig, dispatcher_list: lb.dispatcher_list };
  });
  return {
    ...(raw as unknown as ControllerConfig),
    heartbeat: {
      ...(hbRest as unknown as ControllerConfig['heartbeat']),
      master_keys: [current, previous].filter((k): k is Buffer => k !== undefined),
    },
    lb_nodes: lbNodes,
    scoring: { cycle_ms: raw.scoring.cycle_ms, params: scoringParams(raw, issues) },
    ...(raw.api !== undefined ? { api: apiConfig(raw.api, baseDir, issues) } : {}),
    ...(raw.status_file !== undefined
      ? { status_file: isAbsolute(raw.status_file) ? raw.status_file : resolve(baseDir, raw.status_file) }
      : {}),
  };
}

/** A bearer token shorter than this is guessable; `openssl rand -hex 32` makes a good one. */
const MIN_TOKEN_LENGTH = 16;

/** 127.0.0.0/8: the only addresses where open reads are allowed. */
export function isLoopback(address: string): boolean {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address);
}

/**
 * The API's token is read here like every other secret; open reads are refused off loopback (a
 * status API open to the network tells anyone the pool's size and load), and without a token only
 * open reads would be left, so off loopback a token file is required.
 */
function apiConfig(
  raw: NonNullable<RawController['api']>,
  baseDir: string,
  issues: ConfigIssue[],
): ApiConfig {
  if (raw.read_without_token && !isLoopback(raw.listen)) {
    issues.push({
      path: 'api.read_without_token',
      message: `must be false when api.listen (${raw.listen}) is not a loopback address (127.x.x.x)`,
    });
  }
  const token = secret(raw, 'token', 'token_file', 'api', baseDir, issues, false) ?? null;
  if (token !== null && token.length > 0 && token.length < MIN_TOKEN_LENGTH) {
    issues.push({
      path: 'api.token_file',
      message: `the token must be at least ${MIN_TOKEN_LENGTH} characters`,
    });
  }
  if (token === null && !(raw.read_without_token && isLoopback(raw.listen)) && raw.token_file === undefined) {
    issues.push({
      path: 'api.token_file',
      message: 'required unless api.listen is a loopback address and api.read_without_token is true',
    });
  }
  const tokenFile =
    raw.token_file === undefined
      ? {}
      : { token_file: isAbsolute(raw.token_file) ? raw.token_file : resolve(baseDir, raw.token_file) };
  return {
    listen: raw.listen,
    port: raw.port,
    read_without_token: raw.read_without_token,
    token,
    ...tokenFile,
  };
}

/** Defaults, the file's overrides and the admission section merged; relations checked by the scorer's own rules. */
function scoringParams(raw: RawController, issues: ConfigIssue[]): ScoringParams {
  const { cycle_ms: _c, signals = {}, ...overrides } = raw.scoring;
  const merged = {
    ...DEFAULT_SCORING_PARAMS,
    ...overrides,
    signals: Object.fromEntries(
      Object.entries(DEFAULT_SCORING_PARAMS.signals).map(([name, d]) => [name, { ...d, ...signals[name] }]),
    ),
    admission_enabled: raw.admission.enabled,
    admission_headroom_ratio: raw.admission.headroom,
  } as ScoringParams;
  try {
    return validateScoringParams(merged);
  } catch (e) {
    if (!(e instanceof ScoringParamsError)) throw e;
    for (const problem of e.problems) {
      const field = /^([a-z0-9_]+(?:\.[a-z0-9_]+)*) /.exec(problem)?.[1];
      issues.push({ path: field ? `scoring.${field}` : 'scoring', message: problem });
    }
    return DEFAULT_SCORING_PARAMS;
  }
}

/** Cron expressions are checked here (the schema cannot), and maintenance must name a known backend. */
function checkSchedules(
  schedules: RawController['schedules'],
  backendIds: ReadonlyMap<string, string>,
  issues: ConfigIssue[],
): void {
  const cron = (expr: unknown, path: string): void => {
    if (typeof expr !== 'string') return;
    const v = validateDetailed(expr);
    if (!v.valid) {
      const why = v.errors.map((e) => `${e.field}: ${e.message}`).join('; ');
      issues.push({ path, message: `not a cron expression (${why || 'unparsable'})` });
    }
  };
  cron(schedules.reconcile, 'schedules.reconcile');
  if (schedules.timezone !== undefined && !isTimeZone(schedules.timezone)) {
    issues.push({ path: 'schedules.timezone', message: `unknown time zone ${schedules.timezone}` });
  }
  schedules.maintenance.forEach((m, i) => {
    const at = `schedules.maintenance[${i}]`;
    for (const key of ['drain', 'undrain'] as const)
      cron((m as Record<string, unknown>)[key], `${at}.${key}`);
    if (!backendIds.has(m.backend)) {
      issues.push({ path: `${at}.backend`, message: `no backend ${m.backend} in sets[].backends` });
    }
  });
}

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function resolveAgent(raw: Record<string, unknown>, baseDir: string, issues: ConfigIssue[]): AgentConfig {
  const key = hexKey(secret(raw, 'key', 'key_file', '', baseDir, issues, true), 'key', issues, DERIVED_KEY);
  const previous = hexKey(
    secret(raw, 'previous_key', 'previous_key_file', '', baseDir, issues, false),
    'previous_key',
    issues,
    DERIVED_KEY,
  );
  const {
    key: _k,
    key_file: _f,
    previous_key: _pk,
    previous_key_file: _pf,
    kamailio_rpc,
    ...rest
  } = raw as Record<string, unknown> & { kamailio_rpc?: Record<string, unknown> };
  return {
    ...(rest as unknown as AgentConfig),
    key: key ?? Buffer.alloc(0),
    ...(previous ? { previous_key: previous } : {}),
    ...(kamailio_rpc ? { kamailio_rpc: rpc(kamailio_rpc, 'kamailio_rpc', baseDir, issues) } : {}),
  };
}

/** Validates already-parsed data; `file` is used for messages and to resolve relative secret paths. */
export function configFromData(
  file: string,
  data: unknown,
  locate: Parsed['locate'] = () => undefined,
  expected?: ConfigKind,
): AnyConfig {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError(file, [{ path: '', message: 'must be a mapping (key: value pairs)' }]);
  }
  const kind = (data as { kind?: unknown }).kind;
  if (!KINDS.includes(kind as ConfigKind)) {
    throw new ConfigError(file, [
      {
        path: 'kind',
        message:
          kind === undefined
            ? `required field is missing: say controller or agent`
            : `must be "controller" or "agent"`,
        ...(locate('/kind') ?? {}),
      },
    ]);
  }
  if (expected && kind !== expected) {
    throw new ConfigError(file, [
      {
        path: 'kind',
        message: `this command needs a ${expected} config, not a ${String(kind)} config`,
        ...(locate('/kind') ?? {}),
      },
    ]);
  }
  const validate = validatorFor(`${String(kind)}-config`);
  if (!validate(data)) throw new ConfigError(file, schemaIssues(validate.errors ?? [], locate));

  const issues: ConfigIssue[] = [];
  const baseDir = dirname(resolve(file));
  const config =
    kind === 'controller'
      ? resolveController(data as RawController, baseDir, issues)
      : resolveAgent(data as Record<string, unknown>, baseDir, issues);
  if (issues.length > 0) throw new ConfigError(file, issues);
  return config;
}

export function loadConfig(file: string, expected?: ConfigKind): AnyConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [
      { path: '', message: `cannot read the file: ${(e as NodeJS.ErrnoException).code ?? e}` },
    ]);
  }
  const { data, locate } = parseText(file, text);
  return configFromData(file, data, locate, expected);
}

export function loadControllerConfig(file: string): ControllerConfig {
  return loadConfig(file, 'controller') as ControllerConfig;
}

export function loadAgentConfig(file: string): AgentConfig {
  return loadConfig(file, 'agent') as AgentConfig;
}
