// Types of rte_step.js: the step helper, with the shape of the Rust SDK.

/** A JSON value, as steps read and write it. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Why a step call failed: retryable (the host tries again) or permanent (it does not). */
export declare class StepError extends Error {
  readonly isRetryable: boolean;
  static retryable(message: string): StepError;
  static permanent(message: string): StepError;
}

/** One call of a step. */
export declare class StepContext {
  /** Saga id. */
  readonly txId: string;
  /** Saga type (`adhoc` for a saga given in full). */
  readonly txType: string;
  /** This step's name. */
  readonly stepName: string;
  /** Zero-based position of the step in the saga. */
  readonly stepIndex: number;
  /** Which call this is. */
  readonly phase: "execute" | "compensate" | "confirm";
  /** One-based attempt number within the phase. */
  readonly attempt: number;
  /** For compensate: whether execute is known to have completed. */
  readonly executeOutcome: "completed" | "unknown" | "not_applicable";
  /** The saga's input. */
  readonly input: { [key: string]: Json };
  /** Outputs earlier steps set (for compensate and confirm, this step's too). */
  readonly outputs: { [key: string]: Json };
  /** Outputs set by this call. */
  readonly set: { [key: string]: Json };
  /** Input `key`; missing and no `fallback`: a permanent error naming it. */
  inputAs<T extends Json = Json>(key: string, fallback?: T): T;
  /** Output `key` (earlier steps' or this call's); missing and no `fallback`: permanent. */
  outputAs<T extends Json = Json>(key: string, fallback?: T): T;
  /** Set an output, passed on to later steps. */
  setOutput(key: string, value: Json): void;
}

/** How the host should run a step; each setting left out takes the host's default, and
 * the saga definition and the operator may override each one. */
export interface StepPolicy {
  /** Retries after a retryable failure. */
  maxRetries?: number;
  /** Delay before the first retry, in milliseconds (later ones double, with jitter). */
  retryIntervalMs?: number;
  /** Longest delay between retries, in milliseconds. */
  retryMaxIntervalMs?: number;
  /** Deadline of one call, in milliseconds. */
  timeoutMs?: number;
  /** Whether execute may safely run twice (`false`: not retried after an unknown outcome). */
  idempotent?: boolean;
}

/** One saga step. */
export interface Step {
  /** Name used in saga definitions; unique across the plugins a host loads. */
  name: string;
  /** Version of the step's code (default `0.1.0`). */
  version?: string;
  /** Downstream service, which names the step's circuit breaker (default: the step). */
  service?: string;
  /** One line for operators. */
  description?: string;
  /** How the host should run it. */
  policy?: StepPolicy;
  /** Do the work; outputs set on `ctx` pass on, kv writes commit only if it returns. */
  execute(ctx: StepContext): void;
  /** Undo what execute did; must succeed when there is nothing to undo. */
  compensate?(ctx: StepContext): void;
  /** Make the effect final once every step executed (TCC); retried until it succeeds. */
  confirm?(ctx: StepContext): void;
  /** A key naming this execution's effect: a key that already completed is not run again. */
  idempotencyKey?(ctx: StepContext): string | null;
}

/** Check a step's shape. */
export declare function defineStep<S extends Step>(step: S): S;

/** The plugin's durable key-value store; writes commit with the call's result. A store
 * failure throws a retryable `StepError`. */
export declare const kv: {
  get(key: string): string | null;
  getJson<T extends Json = Json>(key: string): T | null;
  set(key: string, value: string): void;
  setJson(key: string, value: Json): void;
  delete(key: string): void;
};

/** Lines into the host's log, tagged with the saga and step. */
export declare const log: {
  trace(message: string): void;
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
};

/** Values the operator grants to the plugin. */
export declare const config: {
  get(key: string): string | null;
};

/** The host's imports, handed over by the component's entry. */
export interface HostImports {
  kv: {
    get(key: string): string | null;
    set(key: string, value: string): void;
    delete(key: string): void;
  };
  log: { log(level: "trace" | "debug" | "info" | "warn" | "error", message: string): void };
  config: { get(key: string): string | null };
}

export declare function bindHost(imports: HostImports): void;

/** The component's `step` export, built from steps. */
export declare function exportSteps(...steps: Step[]): unknown;

/** Calls steps as the host does, against an in-memory kv, config and log. */
export declare class StepTest {
  constructor(txId?: string);
  /** The plugin's kv: values as stored (JSON text for `setJson`). */
  readonly kv: Map<string, string>;
  readonly config: Map<string, string>;
  readonly logs: [string, string][];
  /** Make every kv call fail (retryable) with `message`; `null` heals it. */
  kvFail(message: string | null): void;
  /** Execute; returns the outputs set (also kept for later calls' `outputs`). */
  execute(step: Step, input: { [key: string]: Json }): { [key: string]: Json };
  compensate(
    step: Step,
    input: { [key: string]: Json },
    outcome?: "completed" | "unknown",
  ): void;
  confirm(step: Step, input: { [key: string]: Json }): void;
}
