/**
 * Config files as the code sees them. Two layers:
 * - `...Section` types: what the schema lets through, defaults filled in by ajv (useDefaults). The
 *   schema is the source of truth; test/unit/config-schema-shapes.test.ts holds a typed key list of
 *   each section, which the compiler checks against the type and the test against the schema (every
 *   field, required or optional), so the two cannot drift apart.
 * - `...Config` types: a section after its secrets are read and its paths resolved; derived from
 *   the section types, so a new schema field reaches the code without a second declaration.
 */
import type { ScoringParams } from '../scoring/params.js';
import type { LogLevel } from '../util/logger.js';
import type { UdpAddress } from '../util/udp-address.js';

export interface LoggingSection {
  readonly level: LogLevel;
}

export interface KamailioRpcSection {
  readonly url: string;
  readonly username?: string;
  readonly password?: string;
  readonly password_file?: string;
  readonly timeout_ms: number;
}

/** `password` is resolved from `password` or `password_file`. */
export type KamailioRpcConfig = Omit<KamailioRpcSection, 'password_file'>;

/** A backend's `ssh:` section: agentless collection. */
export interface SshConfig {
  readonly host: string;
  readonly port: number;
  readonly username: string;
  readonly private_key_file: string;
  readonly host_fingerprint: string;
  readonly interval_ms: number;
  readonly kamcmd: boolean;
  readonly kamcmd_socket?: string;
  readonly sip_port: number;
  readonly sip_address?: string;
}

export interface BackendConfig {
  readonly id: string;
  readonly sip_uri: string;
  readonly capacity: number;
  readonly agent?: UdpAddress;
  readonly ssh?: SshConfig;
}

export interface SetConfig {
  readonly id: number;
  readonly self_registration: boolean;
  readonly backends: readonly BackendConfig[];
}

/**
 * Writing the LB's dispatcher list over SFTP, for a controller on another host than the LB.
 * After loading, `private_key_file` is absolute (resolved against the config file's directory).
 */
export interface SftpConfig {
  readonly host: string;
  readonly port: number;
  readonly username: string;
  readonly private_key_file: string;
  readonly host_fingerprint: string;
}

export interface DispatcherListConfig {
  /** Absolute path of the LB's dispatcher `list_file`, on the LB host. */
  readonly path: string;
  /** Absent: the file is local to the controller. */
  readonly sftp?: SftpConfig;
}

export interface LbNodeSection {
  readonly name: string;
  readonly rpc: KamailioRpcSection;
  readonly dispatcher_list: DispatcherListConfig;
  /** The permissions module's address_file on the LB host (source groups); written like the list. */
  readonly address_file?: string;
  /** The LB's SIP UDP socket, measured from this host's /proc/net/udp; absent: not measured. */
  readonly sip_socket?: UdpAddress;
  /** The LB's SIP server (default kamailio); opensips: docs/opensips.md. */
  readonly kind: 'kamailio' | 'opensips';
  /** With kind opensips: the generated destinations route file on the LB host. */
  readonly opensips?: { readonly destinations_path: string };
}

export type LbNodeConfig = Omit<LbNodeSection, 'rpc'> & { readonly rpc: KamailioRpcConfig };

/** The scoring section: the cycle period and the scorer's own parameters (admission's come from admission{}). */
export type ScoringSection = { readonly cycle_ms: number } & Omit<
  ScoringParams,
  'admission_enabled' | 'admission_headroom_ratio'
>;

export interface ScoringConfig {
  readonly cycle_ms: number;
  /** The scorer's parameters: the scoring section and admission{} merged, then validated. */
  readonly params: ScoringParams;
}

export interface AdmissionSection {
  readonly enabled: boolean;
  /** Limit on new calls = headroom × the pool's effective capacity, split over the LB nodes. */
  readonly headroom: number;
  readonly split: AdmissionSplitSection;
  readonly fairness: FairnessConfig;
}

export type AdmissionConfig = Omit<AdmissionSection, 'split'> & { readonly split: AdmissionSplitConfig };

/** Another LB node of the cluster, read for its demand only (a controller per LB node). */
export interface PeerNodeSection {
  readonly name: string;
  readonly kind: 'kamailio' | 'opensips';
  readonly rpc: KamailioRpcSection;
}

export type PeerNodeConfig = Omit<PeerNodeSection, 'rpc'> & { readonly rpc: KamailioRpcConfig };

/** How the pool's limit is cut into per-node limits (scoring/admission-split.ts, docs/cluster.md). */
export interface AdmissionSplitSection {
  readonly by: 'demand' | 'even';
  readonly floor: number;
  readonly window_ms: number;
  readonly peers: readonly PeerNodeSection[];
}

export type AdmissionSplitConfig = Omit<AdmissionSplitSection, 'peers'> & {
  readonly peers: readonly PeerNodeConfig[];
};

/** Sources named by the operator: every address in `networks` counts as one source, key `g<N>`. */
export interface SourceGroupConfig {
  readonly name: string;
  /** IPv4/IPv6 addresses or CIDR blocks; no address is in two groups (cross-checks.ts). */
  readonly networks: readonly string[];
  readonly weight: number;
  /** Whole pool, calls/s; split over the LB nodes like the limit. */
  readonly guaranteed_cps: number;
  readonly trusted: boolean;
}

/** Fair shares of the admission limit between sources (docs/fairness.md). */
export interface FairnessConfig {
  readonly enabled: boolean;
  readonly top_n: number;
  readonly other_reserve: number;
  readonly deadband: number;
  readonly groups: readonly SourceGroupConfig[];
}

/** The controller's lease at every LB node (schema: lease; docs/controller.md, Lease and backstop). */
export interface LeaseConfig {
  /** What each refresh writes into the LB's countdown (ms_left). */
  readonly duration_ms: number;
  /** Refresh period, also the period of the evidence and backstop reads. */
  readonly refresh_ms: number;
}

/** A scheduled drain and/or undrain of one backend (at least one of the two is given). */
export interface MaintenanceSchedule {
  readonly backend: string;
  readonly drain?: string;
  readonly undrain?: string;
}

export interface SchedulesConfig {
  readonly reconcile: string;
  readonly timezone?: string;
  readonly maintenance: readonly MaintenanceSchedule[];
}

export interface ApiSection {
  readonly listen: string;
  readonly port: number;
  readonly token_file?: string;
  /** GETs answer without a token (only accepted with a loopback `listen`). */
  readonly read_without_token: boolean;
}

/** The controller's HTTP API (src/api/). */
export type ApiConfig = ApiSection & {
  /** Resolved from `token_file`; null when none is configured (then only open reads work). */
  readonly token: string | null;
};

export interface HeartbeatSection {
  readonly listen: UdpAddress;
  readonly master_key?: string;
  readonly master_key_file?: string;
  readonly previous_master_key?: string;
  readonly previous_master_key_file?: string;
  readonly probe_interval_ms: number;
  readonly probe_timeout_ms: number;
  readonly probe_jitter: number;
  readonly down_after_misses: number;
  readonly return_after_oks: number;
  readonly flap_half_life_ms: number;
  readonly flap_base_hold_ms: number;
  readonly flap_max_hold_ms: number;
  readonly max_clock_skew_ms: number;
  readonly max_message_age_ms: number;
  readonly max_self_registered: number;
  readonly max_probes_per_s: number;
}

export type HeartbeatKeyField =
  'master_key' | 'master_key_file' | 'previous_master_key' | 'previous_master_key_file';

export type HeartbeatConfig = Omit<HeartbeatSection, HeartbeatKeyField> & {
  /** Resolved master keys: the current one first, then the previous one during a rotation. */
  readonly master_keys: readonly Buffer[];
};

export interface ControllerSection {
  readonly kind: 'controller';
  readonly heartbeat: HeartbeatSection;
  readonly lb_nodes: readonly LbNodeSection[];
  readonly sets: readonly SetConfig[];
  readonly scoring: ScoringSection;
  readonly admission: AdmissionSection;
  readonly lease: LeaseConfig;
  readonly schedules: SchedulesConfig;
  readonly status_file?: string;
  readonly api?: ApiSection;
  readonly logging: LoggingSection;
}

export type ControllerConfig = Omit<
  ControllerSection,
  'heartbeat' | 'lb_nodes' | 'scoring' | 'api' | 'status_file' | 'admission'
> & {
  readonly heartbeat: HeartbeatConfig;
  readonly admission: AdmissionConfig;
  readonly lb_nodes: readonly LbNodeConfig[];
  readonly scoring: ScoringConfig;
  /** Absent: no HTTP API. */
  readonly api?: ApiConfig;
  /** Absolute path (resolved against the config's directory) of the status snapshot, if any. */
  readonly status_file?: string;
};

export interface AgentSection {
  readonly kind: 'agent';
  readonly backend_id: string;
  readonly set: number;
  readonly listen: UdpAddress;
  readonly controller: UdpAddress;
  readonly key?: string;
  readonly key_file?: string;
  readonly previous_key?: string;
  readonly previous_key_file?: string;
  readonly capacity: number;
  readonly draining: boolean;
  readonly sip: UdpAddress;
  readonly kamailio_rpc?: KamailioRpcSection;
  readonly collect_interval_ms: number;
  readonly logging: LoggingSection;
}

export type AgentConfig = Omit<
  AgentSection,
  'key' | 'key_file' | 'previous_key' | 'previous_key_file' | 'kamailio_rpc'
> & {
  /** Resolved from `key` or `key_file`: this backend's derived heartbeat key. */
  readonly key: Buffer;
  /** During a key rotation (`previous_key` or `previous_key_file`): still accepted, never signed with. */
  readonly previous_key?: Buffer;
  readonly kamailio_rpc?: KamailioRpcConfig;
};

export type AnyConfig = ControllerConfig | AgentConfig;
export type ConfigKind = AnyConfig['kind'];
