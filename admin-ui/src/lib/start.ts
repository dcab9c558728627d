// The start form's pure parts: the input skeleton for a saga type, and how a result reads.

import type { SagaDef } from "../types";
import { isTerminal } from "./status";

/** How a start's result reads: a saga that ended otherwise than completed is a failure. */
export function startOutcome(status: string): { tone: "ok" | "bad" | "warn"; text: string } {
  if (status === "COMPLETED") return { tone: "ok", text: "Completed" };
  if (isTerminal(status)) return { tone: "bad", text: "Started, and it did not complete" };
  return { tone: "warn", text: "Started, still running" };
}

/** `{"from_account": "", …}` from lock-key templates such as `account:{from_account}`. */
export function inputSkeleton(def: SagaDef | undefined): string {
  const fields = new Set<string>();
  for (const k of def?.lock_keys ?? []) for (const m of k.matchAll(/\{([A-Za-z0-9_]+)\}/g)) fields.add(m[1]);
  return JSON.stringify(Object.fromEntries([...fields].map((f) => [f, ""])), null, 2);
}
