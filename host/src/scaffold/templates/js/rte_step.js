// Write RTE saga steps in JavaScript with the shape of the Rust SDK.
//
// A step is `defineStep({ name, execute, compensate?, confirm?, idempotencyKey?, policy? })`;
// `exportSteps(...)` turns steps into the component's `step` export. Inside a step:
//
// - `ctx.inputAs(key, default?)`, `ctx.outputAs(key, default?)`: a value, or a permanent
//   `StepError` naming the missing key; `ctx.setOutput(key, value)`.
// - `kv.get / getJson / set / setJson / delete`: the plugin's durable store; a store failure
//   throws a retryable `StepError`.
// - `log.info(...)` and friends, `config.get(key)`.
// - `throw StepError.retryable(msg)` or `StepError.permanent(msg)`; any other exception
//   aborts the call like a Rust panic (its message goes to the host's log first).
//
// The component's entry (`main.js`) hands the host's imports to `bindHost`; a plain
// `node --test` run uses an in-memory stand-in of the host instead, and `StepTest` calls
// steps as the host does. Types: `rte_step.d.ts`.

const MISSING = Symbol("missing");

/** Why a step call failed: retryable (the host tries again) or permanent (it does not). */
export class StepError extends Error {
  constructor(message, retryable) {
    super(message);
    this.name = "StepError";
    this.isRetryable = retryable;
  }
  static retryable(message) {
    return new StepError(message, true);
  }
  static permanent(message) {
    return new StepError(message, false);
  }
}

/** One call of a step: the saga's id, its input, earlier outputs, and the outputs set. */
export class StepContext {
  constructor(fields) {
    Object.assign(this, fields);
    this.set = {};
  }
  inputAs(key, fallback = MISSING) {
    return lookup("input", key, this.input, fallback);
  }
  outputAs(key, fallback = MISSING) {
    return lookup("output", key, { ...this.outputs, ...this.set }, fallback);
  }
  setOutput(key, value) {
    JSON.stringify(value); // fails here, not at the end of the call
    this.set[key] = value;
  }
}

function lookup(what, key, values, fallback) {
  const value = values[key];
  if (value === undefined || value === null) {
    if (fallback === MISSING) throw StepError.permanent(`missing ${what} \`${key}\``);
    return fallback;
  }
  return value;
}

/** A step: checks its shape once, at load. */
export function defineStep(step) {
  if (typeof step.name !== "string" || step.name === "") throw new Error("a step needs a name");
  if (typeof step.execute !== "function") throw new Error(`step ${step.name} needs execute`);
  return step;
}

// The host's imports, or their in-memory stand-ins.
class FakeHost {
  constructor() {
    this.kv = new Map();
    this.config = new Map();
    this.logs = [];
    this.kvFailure = null;
  }
}

let fake = new FakeHost();
let host = null;

/** Use the host's imports (`rte:saga/kv`, `log`, `config`): called by the component's entry. */
export function bindHost(imports) {
  host = imports;
}

function kvCall(op, key, ...args) {
  if (host) {
    try {
      return host.kv[op](key, ...args);
    } catch (err) {
      throw StepError.retryable(`kv ${op} \`${key}\`: ${err}`);
    }
  }
  if (fake.kvFailure) throw StepError.retryable(`kv ${op} \`${key}\`: ${fake.kvFailure}`);
  if (op === "get") return fake.kv.get(key) ?? null;
  if (op === "set") fake.kv.set(key, args[0]);
  if (op === "delete") fake.kv.delete(key);
  return undefined;
}

/** The plugin's durable key-value store; writes commit with the call's result. */
export const kv = {
  get: (key) => kvCall("get", key),
  getJson(key) {
    const text = kvCall("get", key);
    if (text === null) return null;
    try {
      return JSON.parse(text);
    } catch (err) {
      throw StepError.permanent(`kv \`${key}\` holds invalid JSON: ${err.message}`);
    }
  },
  set: (key, value) => kvCall("set", key, value),
  setJson: (key, value) => kvCall("set", key, JSON.stringify(value)),
  delete: (key) => kvCall("delete", key),
};

function write(level, message) {
  if (host) host.log.log(level, String(message));
  else fake.logs.push([level, String(message)]);
}

/** Lines into the host's log, tagged with the saga and step. */
export const log = {
  trace: (m) => write("trace", m),
  debug: (m) => write("debug", m),
  info: (m) => write("info", m),
  warn: (m) => write("warn", m),
  error: (m) => write("error", m),
};

/** Values the operator grants to the plugin. */
export const config = {
  get: (key) => (host ? host.config.get(key) : fake.config.get(key) ?? null),
};

// The component's `step` export, built from the steps.
function toContext(ctx) {
  const object = (what, text) => {
    const value = text.trim() === "" ? {} : JSON.parse(text);
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw StepError.permanent(`${what} is not a JSON object`);
    }
    return value;
  };
  return new StepContext({
    txId: ctx.txId,
    txType: ctx.txType,
    stepName: ctx.stepName,
    stepIndex: ctx.stepIndex,
    phase: ctx.phase,
    attempt: ctx.attempt,
    executeOutcome: String(ctx.executeOutcome).replace("-", "_"),
    input: object("input", ctx.input),
    outputs: object("outputs", ctx.outputs),
  });
}

function witError(err) {
  if (err instanceof StepError) {
    return { tag: err.isRetryable ? "retryable" : "permanent", val: err.message };
  }
  // Not a step error: a bug. Say what it was, then abort the call as a panic would.
  console.error(`uncaught ${err && err.stack ? err.stack : err}`);
  throw err;
}

const opt = (v) => (v === undefined ? null : v);

function info(step) {
  const p = step.policy;
  return {
    name: step.name,
    version: step.version ?? "0.1.0",
    service: step.service ?? "",
    supportsCompensation: typeof step.compensate === "function",
    supportsIdempotency: typeof step.idempotencyKey === "function",
    supportsConfirm: typeof step.confirm === "function",
    description: step.description ?? "",
    policy: p
      ? {
          maxRetries: opt(p.maxRetries),
          retryIntervalMs: opt(p.retryIntervalMs),
          retryMaxIntervalMs: opt(p.retryMaxIntervalMs),
          timeoutMs: opt(p.timeoutMs),
          idempotent: opt(p.idempotent),
        }
      : null,
  };
}

/** The `step` export of the component: `export const step = exportSteps(a, b)`. */
export function exportSteps(...steps) {
  const byName = new Map(steps.map((s) => [s.name, s]));
  const call = (name, ctx, method) => {
    try {
      const step = byName.get(name);
      if (!step) throw StepError.permanent(`unknown step \`${name}\``);
      const context = toContext(ctx);
      if (step[method]) step[method](context);
      return context;
    } catch (err) {
      throw witError(err);
    }
  };
  return {
    steps: () => steps.map(info),
    execute(name, ctx) {
      return { tag: "done", val: JSON.stringify(call(name, ctx, "execute").set) };
    },
    compensate(name, ctx) {
      call(name, ctx, "compensate");
      return { tag: "done" };
    },
    confirm(name, ctx) {
      call(name, ctx, "confirm");
    },
    onReply(name) {
      throw { tag: "permanent", val: `step \`${name}\` does not wait for replies` };
    },
    idempotencyKey(name, ctx) {
      const step = byName.get(name);
      if (!step || !step.idempotencyKey) return null;
      try {
        return step.idempotencyKey(toContext(ctx)) ?? null;
      } catch {
        return null;
      }
    },
  };
}

/** Call steps as the host does, against a fresh in-memory kv, config and log. */
export class StepTest {
  constructor(txId = "tx-test") {
    fake = new FakeHost();
    host = null;
    this.txId = txId;
    this.outputs = {};
  }
  get kv() {
    return fake.kv;
  }
  get config() {
    return fake.config;
  }
  get logs() {
    return fake.logs;
  }
  kvFail(message) {
    fake.kvFailure = message;
  }
  run(step, method, input, phase, outcome) {
    const ctx = new StepContext({
      txId: this.txId,
      txType: "test",
      stepName: step.name,
      stepIndex: 0,
      phase,
      attempt: 1,
      executeOutcome: outcome,
      input: { ...input },
      outputs: { ...this.outputs },
    });
    const before = new Map(fake.kv);
    try {
      if (step[method]) step[method](ctx);
    } catch (err) {
      fake.kv = before; // a failed call's writes are discarded
      throw err;
    }
    return ctx;
  }
  execute(step, input) {
    const ctx = this.run(step, "execute", input, "execute", "not_applicable");
    Object.assign(this.outputs, ctx.set);
    return ctx.set;
  }
  compensate(step, input, outcome = "completed") {
    this.run(step, "compensate", input, "compensate", outcome);
  }
  confirm(step, input) {
    this.run(step, "confirm", input, "confirm", "not_applicable");
  }
}
