// A saga's history lines (operator and recovery actions), labelled by who acted.

import type { HistoryEntry } from "../types";

export type ActorType = "operator" | "recovery" | "host";

export interface ActorLabel {
  type: ActorType;
  /** "operator", "recovery on host-a", "host host-a". */
  label: string;
  /** The operator's reason, if they gave one. */
  reason: string | null;
  host: string | null;
}

/**
 * Who made a history line. Lines written before actors were recorded have none: recovery's
 * own kinds are still recovery's, and only operators force a saga; a retry could be either.
 */
export function actorOf(h: Pick<HistoryEntry, "kind" | "actor">): ActorLabel | null {
  const a = h.actor;
  if (a?.type === "operator") return { type: "operator", label: "operator", reason: a.reason || null, host: null };
  if (a?.type === "recovery") return { type: "recovery", label: a.host ? `recovery on ${a.host}` : "recovery", reason: null, host: a.host || null };
  if (a?.type === "host") return { type: "host", label: `host ${a.host}`, reason: null, host: a.host || null };
  if (h.kind === "recovery" || h.kind === "recovery_given_up") return { type: "recovery", label: "recovery", reason: null, host: null };
  if (h.kind === "force_complete" || h.kind === "force_cancel") return { type: "operator", label: "operator", reason: null, host: null };
  return null;
}

const KIND_LABELS: Record<string, string> = {
  force_complete: "force complete",
  force_cancel: "force cancel",
  retry: "retry",
  recovery: "recovery",
  recovery_given_up: "recovery gave up",
};

/** "force_cancel" → "force cancel"; unknown kinds are shown as they come. */
export function historyKindLabel(kind: string): string {
  return KIND_LABELS[kind] ?? kind.replace(/_/g, " ");
}

/**
 * One line for a tooltip: "retry by operator (upstream fixed): FAILED → CREATED",
 * "recovery on host-b: resumed in EXECUTING …", "retry by recovery on host-b: …".
 */
export function describeHistory(h: HistoryEntry): string {
  const who = actorOf(h);
  const kind = historyKindLabel(h.kind);
  let by = "";
  if (who?.type === "operator") by = ` by operator${who.reason ? ` (${who.reason})` : ""}`;
  else if (who?.type === "recovery") by = h.kind.startsWith("recovery") ? (who.host ? ` on ${who.host}` : "") : ` by ${who.label}`;
  else if (who) by = ` by ${who.label}`;
  return `${kind}${by}: ${h.message}`;
}
