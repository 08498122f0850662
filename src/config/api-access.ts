/**
 * Who may use the controller's HTTP API. The token is read like every other secret; open reads are
 * refused off loopback (a status API open to the network tells anyone the pool's size and load),
 * and without a token only open reads would be left, so off loopback a token file is required.
 */
import type { ConfigIssue } from './errors.js';
import { resolvePath, secret } from './secrets.js';
import type { ApiConfig, ApiSection } from './types.js';

/** A bearer token shorter than this is guessable; `openssl rand -hex 32` makes a good one. */
const MIN_TOKEN_LENGTH = 16;

/** 127.0.0.0/8: the only addresses where open reads are allowed. */
export function isLoopback(address: string): boolean {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address);
}

export function apiConfig(section: ApiSection, baseDir: string, issues: ConfigIssue[]): ApiConfig {
  if (section.read_without_token && !isLoopback(section.listen)) {
    issues.push({
      path: 'api.read_without_token',
      message: `must be false when api.listen (${section.listen}) is not a loopback address (127.x.x.x)`,
    });
  }
  const token = secret(section, 'token', 'token_file', 'api', baseDir, issues, false) ?? null;
  if (token !== null && token.length > 0 && token.length < MIN_TOKEN_LENGTH) {
    issues.push({
      path: 'api.token_file',
      message: `the token must be at least ${MIN_TOKEN_LENGTH} characters`,
    });
  }
  const openReads = section.read_without_token && isLoopback(section.listen);
  if (token === null && !openReads && section.token_file === undefined) {
    issues.push({
      path: 'api.token_file',
      message: 'required unless api.listen is a loopback address and api.read_without_token is true',
    });
  }
  const { token_file, ...rest } = section;
  return {
    ...rest,
    token,
    ...(token_file === undefined ? {} : { token_file: resolvePath(baseDir, token_file) }),
  };
}
