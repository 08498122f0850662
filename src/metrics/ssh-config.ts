/**
 * A backend's `ssh:` block of the controller config → the SSH collector's options. The config
 * loader has already resolved the key file against the config's directory and checked it readable
 * (so `validate` refuses a missing one); the poller reads it when it builds its session, so a key
 * replaced at the same path is taken at the next controller start or at a reload that changes the
 * backend's ssh section.
 */
import { readFileSync } from 'node:fs';
import type { SshConfig } from '../config/types.js';
import type { SshCollectorOptions } from './ssh-collector.js';

export function sshCollectorOptions(
  cfg: SshConfig,
  readKey: (path: string) => Buffer = (p) => readFileSync(p),
): SshCollectorOptions {
  let privateKey: Buffer;
  try {
    privateKey = readKey(cfg.private_key_file);
  } catch (e) {
    throw new Error(
      `ssh ${cfg.username}@${cfg.host}: cannot read private_key_file ${cfg.private_key_file}: ${(e as Error).message}`,
      { cause: e },
    );
  }
  return {
    ssh: {
      host: cfg.host,
      port: cfg.port,
      username: cfg.username,
      privateKey,
      hostFingerprint: cfg.host_fingerprint,
    },
    ...(cfg.kamcmd ? { kamcmd: cfg.kamcmd_socket !== undefined ? { socket: cfg.kamcmd_socket } : {} } : {}),
    // The SSH host name need not be the SIP listen address: the socket is matched by port alone
    // unless the operator names its address (several SIP servers on one host sharing the port).
    sipSocket: { port: cfg.sip_port, ...(cfg.sip_address !== undefined ? { address: cfg.sip_address } : {}) },
  };
}
