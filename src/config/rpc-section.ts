/** A Kamailio JSON-RPC section (an LB node's, or the agent's local one) with its password read. */
import type { ConfigIssue } from './errors.js';
import { secret } from './secrets.js';
import type { KamailioRpcConfig, KamailioRpcSection } from './types.js';

export function rpcConfig(
  section: KamailioRpcSection,
  at: string,
  baseDir: string,
  issues: ConfigIssue[],
): KamailioRpcConfig {
  const password = secret(section, 'password', 'password_file', at, baseDir, issues, false);
  if (password !== undefined && section.username === undefined) {
    issues.push({ path: `${at}.username`, message: 'required when a password is given' });
  }
  const { password: _inline, password_file: _file, ...rest } = section;
  return { ...rest, ...(password !== undefined ? { password } : {}) };
}
