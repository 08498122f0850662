/**
 * What the controller tells the world, typed: the log (event-log.ts), /metrics (telemetry/), the
 * API's event stream and through it the demo and the benches all subscribe here. Nobody parses a
 * log line: a consumer that needs a fact reads it from an event. Field names are snake_case where
 * they reach the wire (GET /api/v1/events, schemas/api/event.schema.json).
 */
import type { HealthKind } from '../health/state-machine.js';
import type { LimitCps } from '../kamailio/admission.js';
import type { ReloadChanges } from './reload-plan.js';

export interface BackendWeight {
  readonly id: string;
  readonly weight: number;
  readonly phase: string;
  readonly factor: number;
  readonly pressure: number | null;
  readonly dominant: string | null;
}

/** How an apply to an LB node ended, as the API and /metrics report it. */
export type PushOutcomeKind = 'applied' | 'in_sync' | 'failed';

export type ControllerEvent =
  | {
      readonly type: 'controller_started';
      readonly heartbeat: { readonly address: string; readonly port: number };
      readonly lb_nodes: readonly string[];
      readonly backends: number;
      readonly admission: boolean;
    }
  | { readonly type: 'controller_stopped' }
  /** A set's weights changed (emitted only on change), with what drove them. */
  | {
      readonly type: 'weights_changed';
      readonly set: number;
      readonly mode: 'scored' | 'panic';
      readonly pool_cps: number | null;
      readonly backends: readonly BackendWeight[];
    }
  | {
      readonly type: 'backend_health';
      readonly backend: string;
      readonly set: number;
      readonly from: HealthKind;
      readonly to: HealthKind;
    }
  | {
      readonly type: 'backend_registered';
      readonly backend: string;
      readonly set: number;
      readonly uri: string;
    }
  | { readonly type: 'backend_forgotten'; readonly backend: string }
  | {
      readonly type: 'backend_drained';
      readonly backend: string;
      readonly drained: boolean;
      readonly reason: string | null;
    }
  | { readonly type: 'sample_rejected'; readonly backend: string; readonly reason: string }
  /** A set with nothing heard yet: start-up, not a partition. */
  | { readonly type: 'set_waiting'; readonly set: number }
  | {
      readonly type: 'panic_started';
      readonly set: number;
      readonly healthy: number;
      readonly counted: number;
      readonly threshold: number;
    }
  | { readonly type: 'panic_ended'; readonly set: number }
  | { readonly type: 'discovery'; readonly added: readonly string[]; readonly removed: readonly string[] }
  /** Something in an LB's list discovery could not take (a bad id or attribute, a conflict). */
  | {
      readonly type: 'discovery_problem';
      readonly node: string;
      readonly kind: string;
      readonly detail: string;
    }
  | { readonly type: 'lb_list_unreadable'; readonly node: string; readonly error: string }
  | {
      readonly type: 'node_blocked';
      readonly node: string;
      readonly sets: readonly number[];
      readonly reason: string;
    }
  | { readonly type: 'node_unblocked'; readonly node: string }
  /** An apply that reached the LB (a verified push, a read that found it in sync) or failed. */
  | {
      readonly type: 'node_push';
      readonly node: string;
      readonly outcome: PushOutcomeKind;
      readonly changes: number;
      readonly ms: number;
      readonly drift_repaired: boolean;
      /** Where a failed apply stopped (read, write, reload, verify, admission, apply). */
      readonly stage: string | null;
      readonly error: string | null;
      readonly failures: number;
    }
  /** The first success, or the first after failures. */
  | { readonly type: 'node_reachable'; readonly node: string; readonly again: boolean }
  /** The first failure after a success. */
  | { readonly type: 'node_unreachable'; readonly node: string; readonly error: string }
  | {
      readonly type: 'admission_applied';
      readonly node: string;
      readonly limits: readonly { readonly set: number; readonly limitCps: LimitCps }[];
    }
  /** Admission control is off: limits the LB still held were lifted. */
  | { readonly type: 'admission_cleared'; readonly node: string; readonly sets: readonly number[] }
  /** The LB config lacks SIPWEIGH_ADMISSION_CONTROL for these sets. */
  | { readonly type: 'admission_missing'; readonly node: string; readonly sets: readonly number[] }
  | { readonly type: 'admission_failed'; readonly node: string; readonly error: string }
  /** Fair admission: a source now offers more than its share of a saturated set at this node. */
  | {
      readonly type: 'source_limited';
      readonly node: string;
      readonly set: number;
      readonly source: string;
      readonly offered_cps: number;
      readonly share_cps: number;
    }
  /** The source is within its share again (or the set is no longer saturated, or it went quiet). */
  | { readonly type: 'source_released'; readonly node: string; readonly set: number; readonly source: string }
  /** The LB's source groups file was written and reloaded. */
  | {
      readonly type: 'source_groups_loaded';
      readonly node: string;
      readonly groups: number;
      readonly networks: number;
    }
  /** An LB node's admission counters could not be read: its demand is going stale (told once). */
  | { readonly type: 'node_demand_failed'; readonly node: string; readonly error: string }
  /** Its counters are read again after node_demand_failed. */
  | { readonly type: 'node_demand_ok'; readonly node: string }
  /** The admission split over the LB nodes changed: each node's fraction of the pool's limit. */
  | { readonly type: 'admission_split'; readonly fractions: Readonly<Record<string, number>> }
  /** Fair admission works again at an LB node after source_shares_failed or source_shares_missing. */
  | { readonly type: 'source_shares_ok'; readonly node: string }
  /** The LB has no per-source table (sipweigh_src): its config predates fair admission or disables it. */
  | { readonly type: 'source_shares_missing'; readonly node: string }
  /** Reading the LB's source counters or writing shares failed (told once, until it works again). */
  | {
      readonly type: 'source_shares_failed';
      readonly node: string;
      readonly stage: 'groups' | 'read' | 'write';
      readonly error: string;
    }
  | {
      readonly type: 'config_reloaded';
      readonly trigger: 'SIGHUP' | 'api';
      readonly file: string;
      readonly changes: ReloadChanges;
      /** The file said what was already in force. */
      readonly unchanged: boolean;
    }
  /** Refused whole: the running config stays. `error` names files and fields, never values. */
  | {
      readonly type: 'config_reload_refused';
      readonly trigger: 'SIGHUP' | 'api';
      readonly file: string;
      readonly error: string;
    }
  /** The LB's retransmission counts made a backend suspect (health/passive-evidence.ts). */
  | {
      readonly type: 'evidence_suspect';
      readonly backend: string;
      readonly set: number;
      readonly retransmissions: number;
    }
  /** Seen at an LB node: its lease lapsed and it probes its destinations on its own (its backstop). */
  | { readonly type: 'lb_backstop_on'; readonly node: string }
  /** Seen at an LB node: the lease is back, its own probing is off. */
  | { readonly type: 'lb_backstop_off'; readonly node: string }
  /** The first failed lease refresh after a good one (every failure is counted in /metrics). */
  | { readonly type: 'lease_refresh_failed'; readonly node: string; readonly error: string }
  | { readonly type: 'lease_refresh_recovered'; readonly node: string }
  /** The lease is no longer refreshed at a node the controller cannot act on (lb-watch leaseWithheld). */
  | {
      readonly type: 'lease_withheld';
      readonly node: string;
      readonly reason: 'not_scored' | 'apply_failing';
    }
  | { readonly type: 'lease_resumed'; readonly node: string }
  /** The first failed read of a node's evidence (the lease refreshed or not due); then its recovery. */
  | { readonly type: 'lb_evidence_read_failed'; readonly node: string; readonly error: string }
  | { readonly type: 'lb_evidence_read_recovered'; readonly node: string }
  /** The node's LB snippet has no evidence table (an older snippet): no passive evidence from it. */
  | { readonly type: 'lb_evidence_unsupported'; readonly node: string; readonly error: string }
  /** The LB's own SIP socket (lb_nodes[].sip_socket) is read from this host again, or for the first time. */
  | { readonly type: 'lb_socket_measured'; readonly node: string; readonly socket: string }
  /** It cannot be read: not this host's address, nothing bound there, /proc unreadable. */
  | {
      readonly type: 'lb_socket_unmeasured';
      readonly node: string;
      readonly socket: string;
      readonly reason: string;
    }
  /** The kernel started dropping datagrams on it (its queue is full): once per run of drops. */
  | {
      readonly type: 'lb_socket_dropping';
      readonly node: string;
      readonly socket: string;
      readonly drops_per_s: number;
      readonly rx_queue_bytes: number;
    }
  /** A run of drops ended; `dropped`: datagrams lost during it. */
  | {
      readonly type: 'lb_socket_drops_ended';
      readonly node: string;
      readonly socket: string;
      readonly dropped: number;
    }
  | { readonly type: 'cycle_failed'; readonly stage: 'scoring' | 'cycle'; readonly error: string }
  | { readonly type: 'status_file_error'; readonly file: string; readonly error: string }
  /** A scheduled job (reconcile, drain, undrain) failed; it is tried again at its next turn. */
  | { readonly type: 'schedule_failed'; readonly job: string; readonly error: string }
  /**
   * A bug in an API handler (answered 500; `method` and `url` of the request) or an error of the
   * listening server once bound (`stage: server`, no request).
   */
  | {
      readonly type: 'api_error';
      readonly stage: 'handler' | 'server';
      readonly error: string;
      readonly method: string | null;
      readonly url: string | null;
    };

export type ControllerEventType = ControllerEvent['type'];

/** An event as subscribers receive it: stamped with the wall clock (epoch ms) when it was emitted. */
export type StampedEvent = ControllerEvent & { readonly time: number };

export type EventListener = (event: StampedEvent) => void;

/** Events kept for late subscribers (GET /api/v1/events?history=1): the latest this many. */
export const EVENT_HISTORY = 1000;

/**
 * A small synchronous emitter that also keeps the latest events, so a subscriber that arrives late
 * (the demo, a bench) can start from what already happened. A listener that throws stops no one.
 */
export class EventBus {
  private readonly listeners = new Set<EventListener>();
  private readonly kept: StampedEvent[] = [];

  constructor(
    private readonly now: () => number = Date.now,
    private readonly keep: number = EVENT_HISTORY,
  ) {}

  /** The latest events, oldest first. */
  history(): readonly StampedEvent[] {
    return [...this.kept];
  }

  /** Returns the unsubscribe function. */
  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: ControllerEvent): void {
    const stamped: StampedEvent = { ...event, time: this.now() };
    this.kept.push(stamped);
    if (this.kept.length > this.keep) this.kept.splice(0, this.kept.length - this.keep);
    for (const l of this.listeners) {
      try {
        l(stamped);
      } catch {
        // A faulty subscriber (telemetry, a closed stream) must never stop the loop.
      }
    }
  }

  emitAll(events: readonly ControllerEvent[]): void {
    for (const e of events) this.emit(e);
  }
}
