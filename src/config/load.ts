/**
 * Loads a controller or agent config: read and parse (read.ts), validate against its JSON Schema
 * with the defaults filled in (schema-registry.ts, schema-issues.ts), then read the secrets and
 * check what the schema cannot (controller.ts, agent.ts). Either a typed config or a ConfigError
 * naming the file, the field path (with line and column) and what was expected. Nothing is
 * started or changed.
 */
import { dirname, resolve } from 'node:path';
import { agentConfig } from './agent.js';
import { controllerConfig } from './controller.js';
import { ConfigError, pathToJsonPointer, type ConfigIssue } from './errors.js';
import { NOWHERE, readConfigFile, type Locate } from './read.js';
import { schemaIssues } from './schema-issues.js';
import { validatorFor } from './schema-registry.js';
import type {
  AgentConfig,
  AgentSection,
  AnyConfig,
  ConfigKind,
  ControllerConfig,
  ControllerSection,
} from './types.js';

const KINDS: readonly ConfigKind[] = ['controller', 'agent'];

function kindOf(file: string, data: unknown, locate: Locate, expected?: ConfigKind): ConfigKind {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError(file, [{ path: '', message: 'must be a mapping (key: value pairs)' }]);
  }
  const kind = (data as { kind?: unknown }).kind;
  const known = KINDS.find((k) => k === kind);
  if (known === undefined) {
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
  if (expected && known !== expected) {
    throw new ConfigError(file, [
      {
        path: 'kind',
        message: `this command needs a ${expected} config, not a ${known} config`,
        ...(locate('/kind') ?? {}),
      },
    ]);
  }
  return known;
}

/** Validates already-parsed data; `file` is used for messages and to resolve relative paths. */
export function configFromData(
  file: string,
  data: unknown,
  locate: Locate = NOWHERE,
  expected?: ConfigKind,
): AnyConfig {
  const kind = kindOf(file, data, locate, expected);
  const issues: ConfigIssue[] = [];
  const baseDir = dirname(resolve(file));
  let config: AnyConfig;
  if (kind === 'controller') {
    const validate = validatorFor<ControllerSection>('controller-config');
    if (!validate(data)) throw new ConfigError(file, schemaIssues(validate.errors ?? [], locate));
    config = controllerConfig(data, baseDir, issues);
  } else {
    const validate = validatorFor<AgentSection>('agent-config');
    if (!validate(data)) throw new ConfigError(file, schemaIssues(validate.errors ?? [], locate));
    config = agentConfig(data, baseDir, issues);
  }
  if (issues.length > 0) {
    // Rules checked after the schema name a field too: point at its line like the schema's issues.
    const placed = issues.map((i) =>
      i.line === undefined ? { ...i, ...locate(pathToJsonPointer(i.path)) } : i,
    );
    throw new ConfigError(file, placed);
  }
  return config;
}

export function loadConfig(file: string, expected?: ConfigKind): AnyConfig {
  const { data, locate } = readConfigFile(file);
  return configFromData(file, data, locate, expected);
}

export function loadControllerConfig(file: string): ControllerConfig {
  const config = loadConfig(file, 'controller');
  if (config.kind !== 'controller') throw new Error('unreachable: kind was checked');
  return config;
}

/** The agent's config, as a SIGHUP re-reads it (key rotation). */
export function loadAgentConfig(file: string): AgentConfig {
  const config = loadConfig(file, 'agent');
  if (config.kind !== 'agent') throw new Error('unreachable: kind was checked');
  return config;
}
