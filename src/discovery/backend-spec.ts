/** What discovery hands the probe registry: one backend, wherever it was found. */
import type { SshConfig } from '../config/types.js';
import type { UdpAddress } from '../util/udp-address.js';

/** Where a backend came from; config and dispatcher entries are never replaced by a hello. */
export type BackendSource = 'config' | 'dispatcher' | 'hello';

export interface BackendSpec {
  readonly id: string;
  readonly set: number;
  readonly uri: string;
  readonly capacity: number;
  /** The agent's heartbeat address; without one the backend is not probed until its hello arrives. */
  readonly agent?: UdpAddress;
  /** Agentless: probed over SSH (ssh-poller.ts) when there is no `agent`. */
  readonly ssh?: SshConfig;
  readonly source: BackendSource;
}
