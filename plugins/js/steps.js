// An RTE step plugin in JavaScript: `js_notify` records a notification for the saga,
// `js_fail_if` fails on demand. Compensation of `js_notify` marks the record retracted.

import kv from "rte:saga/kv@0.1.0";

const permanent = (message) => ({ tag: "permanent", val: message });

// A kv failure may clear on the next attempt.
function store(op, ...args) {
  try {
    return kv[op](...args);
  } catch (err) {
    throw { tag: "retryable", val: `kv ${op} ${args[0]}: ${err}` };
  }
}

const info = (name, description, supports = {}) => ({
  name,
  version: "0.1.0",
  service: "notifications",
  supportsCompensation: supports.compensation ?? false,
  supportsIdempotency: supports.idempotency ?? false,
  description,
});

const steps = {
  js_notify: {
    info: info("js_notify", "record a notification to input `to` about the saga", {
      compensation: true,
      idempotency: true,
    }),
    execute(ctx, input, outputs) {
      if (typeof input.to !== "string" || input.to === "") {
        throw permanent("input `to` must be a non-empty string");
      }
      const key = `notify/${ctx.txId}`;
      // An earlier attempt's record stands: notify once.
      let record = JSON.parse(store("get", key) ?? "null");
      if (record === null) {
        const r = outputs.reservation;
        const what = r ? `${r.qty} x ${r.item} reserved` : "all steps done";
        record = {
          id: `ntf:${ctx.txId}`,
          to: input.to,
          message: `Hello ${input.to}, saga ${ctx.txId}: ${what}`,
          state: "sent",
        };
        store("set", key, JSON.stringify(record));
      }
      return { notification_id: record.id, notification: record.message };
    },
    compensate(ctx) {
      const key = `notify/${ctx.txId}`;
      const record = JSON.parse(store("get", key) ?? "null");
      if (record !== null && record.state !== "retracted") {
        store("set", key, JSON.stringify({ ...record, state: "retracted" }));
      }
    },
    idempotencyKey: (ctx) => `js_notify:${ctx.txId}`,
  },
  js_fail_if: {
    info: info("js_fail_if", "fail permanently when input `fail` is true"),
    execute(ctx, input) {
      if (input.fail === true) throw permanent("failed on request (input `fail` is true)");
      return { checked: true };
    },
  },
};

function lookup(name) {
  const s = steps[name];
  if (!s) throw permanent(`unknown step \`${name}\``);
  return s;
}

export const step = {
  steps: () => Object.values(steps).map((s) => s.info),
  execute(name, ctx) {
    const out = lookup(name).execute(ctx, JSON.parse(ctx.input), JSON.parse(ctx.outputs));
    return JSON.stringify(out);
  },
  compensate(name, ctx) {
    lookup(name).compensate?.(ctx);
  },
  idempotencyKey: (name, ctx) => steps[name]?.idempotencyKey?.(ctx) ?? null,
};
