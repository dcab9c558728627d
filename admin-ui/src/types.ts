// Shapes of the host's REST API (snake_case, RFC 3339 times).

export const TX_STATUSES = [
  "CREATED",
  "LOCKED",
  "EXECUTING",
  "CONFIRMING",
  "COMPLETED",
  "FAILED",
  "COMPENSATING",
  "COMPENSATED",
  "COMPENSATION_FAILED",
  "TIMEOUT",
  "CANCELLED",
] as const;
export type TxStatus = (typeof TX_STATUSES)[number];

export const STEP_STATUSES = [
  "PENDING",
  "EXECUTING",
  "WAITING",
  "COMPLETED",
  "FAILED",
  "COMPENSATING",
  "COMPENSATED",
  "COMPENSATION_FAILED",
  "SKIPPED",
] as const;
export type StepStatus = (typeof STEP_STATUSES)[number];

/** Why a step call failed (its own field; older hosts put it before the error text instead). */
export const FAILURE_KINDS = [
  "retryable",
  "permanent",
  "trap",
  "memory",
  "timeout",
  "breaker_open",
  "kv_conflict",
  "unavailable",
  "store_unavailable",
  "lost",
  "resource_limit",
  "output_conflict",
] as const;
export type FailureKind = (typeof FAILURE_KINDS)[number];

export interface StepView {
  step_index: number;
  step_name: string;
  status: StepStatus;
  attempts: number;
  compensation_attempts: number;
  output: Record<string, unknown> | null;
  /** The latest failure's message (rows stored by older hosts may still start with "kind: "). */
  error: string | null;
  idempotency_key: string | null;
  plugin_digest: string | null;
  started_at: string | null;
  finished_at: string | null;
  /** The kind of the latest failure. */
  failure_kind: FailureKind | null;
  /** The parallel group the step is a branch of (absent for a step that runs alone). */
  group?: StepGroup;
  /** Its place in the order the saga's steps completed. */
  completed_order?: number;
  /** The reply a WAITING step waits for. */
  wait?: WaitView;
}

/** A step's wait for a reply. */
export interface WaitView {
  correlation_id: string;
  tx_id: string;
  step_index: number;
  phase: AttemptPhase;
  attempt: number;
  started_at: string;
  deadline_at: string;
  /** What came back, once recorded: "message", "error" or "timed_out". */
  reply?: string;
}

/** A parallel group, named by the index of its first step. */
export interface StepGroup {
  first: number;
  max_concurrent: number;
}

/** One entry of a saga type's steps: a step, or a parallel group of steps. */
export type StepEntry = string | { parallel: string[]; max_concurrent?: number };

export type AttemptPhase = "execute" | "compensate" | "confirm";
export type AttemptOutcome = "completed" | "replayed" | "failed" | "nothing_to_undo" | "waiting";

/** One call of one step, as stored with the saga (it outlives the host's event log). */
export interface AttemptView {
  step_index: number;
  step_name: string;
  phase: AttemptPhase;
  /** Its number within the phase, from 1. */
  attempt: number;
  started_at: string;
  ended_at: string;
  duration_ms: number;
  outcome: AttemptOutcome;
  failure_kind: FailureKind | null;
  message: string | null;
  /** The host that made the call. */
  host: string;
  plugin_digest: string | null;
}

/** Who changed a saga: an operator (with why), a host's recovery worker, or the driving host. */
export type Actor = { type: "operator"; reason: string } | { type: "recovery"; host: string } | { type: "host"; host: string };

export type HistoryKind = "force_complete" | "force_cancel" | "retry" | "recovery" | "recovery_given_up";

export interface HistoryEntry {
  at: string;
  kind: HistoryKind | (string & {});
  /** Null on lines written before actors were recorded. */
  actor: Actor | null;
  message: string;
}

export interface TxView {
  tx_id: string;
  tx_type: string;
  status: TxStatus;
  input: unknown;
  output: Record<string, unknown>;
  lock_keys: string[];
  current_step: number;
  total_steps: number;
  /** Whole-saga retries (an operator's or recovery's retry; recovery resuming a saga is not one). */
  retry_count: number;
  max_retries: number;
  timeout_ms: number;
  deadline_at: string;
  error: string | null;
  version: number;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
  steps?: StepView[];
  /** Operator and recovery actions (detail only). */
  history?: HistoryEntry[];
  /** Every attempt of every step, oldest first (detail only). */
  attempts?: AttemptView[];
  /** The step whose failure ended or compensated the saga (detail only; absent if none). */
  failed_step?: number;
}

export interface TxPage {
  transactions: TxView[];
  total: number;
  page: number;
  page_size: number;
}

export interface Stats {
  total_transactions: number;
  pending_transactions: number;
  completed_transactions: number;
  failed_transactions: number;
  compensation_failed_transactions: number;
  by_status: Record<string, number>;
  by_type: Record<string, Record<string, number>>;
}

export interface TimelinePoint {
  at: string;
  completed: number;
  failed: number;
}

export interface StatsTimeline {
  bucket_seconds: number;
  points: TimelinePoint[];
}

/** One recovery worker's figures (or their totals over all hosts). */
export interface RecoveryFigures {
  running: boolean;
  interval_ms: number;
  stuck_threshold_ms: number;
  scanned: number;
  processed: number;
  failed: number;
  last_run_at: string | null;
  last_run_duration_ms: number | null;
}

/** One host's recovery worker. */
export interface HostRecovery extends RecoveryFigures {
  host_id: string;
  /** The host that answered the request. */
  this_host: boolean;
}

/**
 * `/api/recovery/stats`: totals over every live host sharing the database (counts summed,
 * the latest run, running if any worker runs), then each host's own, this host first.
 * `hosts` is missing on hosts older than the cluster views.
 */
export interface RecoveryStats extends RecoveryFigures {
  hosts?: HostRecovery[];
}

/** Digest (SHA-256, hex) of the version serving, by plugin file. */
export type PluginDigests = Record<string, string>;

/** The plugin versions one host serves. */
export interface HostPlugins {
  host_id: string;
  this_host: boolean;
  plugins: PluginDigests;
}

/** One live host sharing the database (`/api/hosts`), this host first. */
export interface HostView {
  host_id: string;
  this_host: boolean;
  started_at: string;
  /** When it last reported. */
  seen_at: string;
  recovery: RecoveryFigures;
  plugins: PluginDigests;
}

export interface HostsResponse {
  hosts: HostView[];
}

export type BreakerState = "closed" | "open" | "half_open";

export interface Breaker {
  service: string;
  state: BreakerState;
  consecutive_failures: number;
  total_failures: number;
  total_successes: number;
}

/** One live host's circuit breakers. */
export interface HostBreakers {
  host_id: string;
  /** The host that answered the request. */
  this_host: boolean;
  circuit_breakers: Breaker[];
}

/**
 * `/api/circuit-breakers`: this host's breakers; whether every host shares them (they live in
 * Redis); each live host's, this host first. `shared` and `hosts` are missing on older hosts.
 */
export interface BreakersResponse {
  circuit_breakers: Breaker[];
  shared?: boolean;
  hosts?: HostBreakers[];
}

export interface RteEvent {
  type: string;
  tx_id: string | null;
  tx_type: string | null;
  step_name: string | null;
  error: string | null;
  data: Record<string, unknown>;
  timestamp: string;
}

/** `/api/events`: a page of the host's event log (`total`, `log_size` missing on older hosts). */
export interface EventPage {
  events: RteEvent[];
  total?: number;
  page?: number;
  page_size?: number;
  log_size?: number;
}

export interface StepInfo {
  name: string;
  version: string;
  service: string;
  supports_compensation: boolean;
  supports_idempotency: boolean;
  description: string;
}

export interface PluginStatus {
  file: string;
  digest: string | null;
  steps: StepInfo[];
  limits: { memory_bytes: number; timeout: string; max_output_bytes: number } | null;
  loaded_at: string | null;
  error: string | null;
}

/**
 * `/api/plugins`: this host's plugins, and the versions every live host serves.
 * `same_on_every_host` and `hosts` are missing on hosts older than the cluster views.
 */
export interface PluginList {
  plugins: PluginStatus[];
  same_on_every_host?: boolean;
  hosts?: HostPlugins[];
}

export interface SagaDef {
  steps: StepEntry[];
  lock_keys: string[];
  timeout: string | null;
  max_retries: number | null;
  description: string;
}

/** Event types the host publishes (more may appear; unknown ones are shown too). */
export const EVENT_TYPES = [
  "tx.created",
  "tx.completed",
  "tx.failed",
  "tx.timeout",
  "tx.cancelled",
  "tx.compensated",
  "tx.compensation_failed",
  "step.started",
  "step.completed",
  "step.failed",
  "step.compensated",
  "circuit.opened",
  "circuit.closed",
  "circuit.reset",
  "recovery.start",
  "alert.warning",
  "alert.critical",
] as const;

/** `POST /api/transactions/bulk`: each saga's outcome. */
export interface BulkResponse {
  action: "retry" | "force-cancel";
  dry_run: boolean;
  matched: number;
  succeeded: number;
  failed: number;
  remaining: number;
  results: { tx_id: string; status_before: TxStatus; ok: boolean; status?: TxStatus; error?: { code: string; message: string } }[];
}
