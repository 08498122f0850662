/** A schema-valid agent section → the agent's config: its key and the local RPC password read. */
import type { ConfigIssue } from './errors.js';
import { rpcConfig } from './rpc-section.js';
import { DERIVED_KEY, hexKey, secret } from './secrets.js';
import type { AgentConfig, AgentSection } from './types.js';

export function agentConfig(a: AgentSection, baseDir: string, issues: ConfigIssue[]): AgentConfig {
  const key = hexKey(secret(a, 'key', 'key_file', '', baseDir, issues, true), 'key', issues, DERIVED_KEY);
  const previous = hexKey(
    secret(a, 'previous_key', 'previous_key_file', '', baseDir, issues, false),
    'previous_key',
    issues,
    DERIVED_KEY,
  );
  const {
    key: _inline,
    key_file: _file,
    previous_key: _previousInline,
    previous_key_file: _previousFile,
    kamailio_rpc,
    ...rest
  } = a;
  return {
    ...rest,
    key: key ?? Buffer.alloc(0),
    ...(previous ? { previous_key: previous } : {}),
    ...(kamailio_rpc ? { kamailio_rpc: rpcConfig(kamailio_rpc, 'kamailio_rpc', baseDir, issues) } : {}),
  };
}
