/**
 * Config files as the code sees them after validation (defaults applied, secrets read from files).
 * Shapes mirror schemas/*-config.schema.json; the schema is the source of truth for what is accepted.
 */
import type { ScoringParams } from '../scoring/params.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

export interface UdpEndpoint {
  readonly address: string;
  readonly port: number;
}

export interface KamailioRpcConfig {
  readonly url: string;
  readonly username?: string;
  /** Resolved from `password` or `password_file`. */
  readonly password?: string;
  readonly timeout_ms: number;
}

export interface SshConfig {
  readonly host: string;
  readonly port: number;
  readonly username: string;
  readonly private_key_file: string;
  readonly host_fingerprint: string;
  readonly interval_ms: number;
  readonly kamcmd: boolean;
  readonly sip_port: number;
}

export interface BackendConfig {
  readonly id: string;
  readonly sip_uri: string;
  readonly capacity: number;
  readonly agent?: UdpEndpoint;
  readonly ssh?: SshConfig;
}

export interface SetConfig {
  readonly id: number;
  readonly name?: string;
  readonly self_registration: boolean;
  readonly backends: readonly BackendConfig[];
}

/** Writing the LB's dispatcher list over SFTP, for a controller on another host than the LB. */
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

export interface LbNodeConfig {
  readonly name: string;
  readonly rpc: KamailioRpcConfig;
  readonly dispatcher_list: DispatcherListConfig;
}

export interface ScoringConfig {
  readonly cycle_ms: number;
  /** The scorer's parameters: defaults, the file's overrides and admission{} merged, then validated. */
  readonly params: ScoringParams;
}

export interface AdmissionConfig {
  readonly enabled: boolean;
  /** Limit on new calls = headroom × the pool's effective capacity, split over the LB nodes. */
  readonly headroom: number;
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

/** The controller's HTTP API (src/api/). */
export interface ApiConfig {
  readonly listen: string;
  readonly port: number;
  /** Resolved from `token_file`; null when none is configured (then only open reads work). */
  readonly token: string | null;
  /** Absolute path of the token file, if any (re-read on reload). */
  readonly token_file?: string;
  /** GETs answer without a token (only accepted with a loopback `listen`). */
  readonly read_without_token: boolean;
}

export interface ControllerConfig {
  readonly kind: 'controller';
  readonly heartbeat: {
    readonly listen: UdpEndpoint;
    /** Resolved master keys: the current one first, then the previous one during a rotation. */
    readonly master_keys: readonly Buffer[];
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
  };
  readonly lb_nodes: readonly LbNodeConfig[];
  readonly sets: readonly SetConfig[];
  readonly scoring: ScoringConfig;
  readonly admission: AdmissionConfig;
  readonly schedules: SchedulesConfig;
  /** Absolute path (resolved against the config's directory) of the status snapshot, if any. */
  readonly status_file?: string;
  /** Absent: no HTTP API. */
  readonly api?: ApiConfig;
  readonly logging: { readonly level: LogLevel };
}

export interface AgentConfig {
  readonly kind: 'agent';
  readonly backend_id: string;
  readonly set: number;
  readonly listen: UdpEndpoint;
  readonly controller: UdpEndpoint;
  /** Resolved from `key` or `key_file`: this backend's derived heartbeat key. */
  readonly key: Buffer;
  /** During a key rotation (`previous_key` or `previous_key_file`): still accepted, never signed with. */
  readonly previous_key?: Buffer;
  readonly capacity: number;
  readonly draining: boolean;
  readonly sip: UdpEndpoint;
  readonly kamailio_rpc?: KamailioRpcConfig;
  readonly collect_interval_ms: number;
  readonly logging: { readonly level: LogLevel };
}

export type AnyConfig = ControllerConfig | AgentConfig;
export type ConfigKind = AnyConfig['kind'];
