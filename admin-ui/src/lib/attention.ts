// What on the host needs an operator now: the dashboard's first panel. Pure, so that the
// rules are tested without a host.

import type { Breaker, RecoveryFigures, RteEvent, TxView } from "../types";

export type AttentionLevel = "critical" | "warning" | "ok";

export interface AttentionItem {
  key: string;
  level: AttentionLevel;
  title: string;
  detail: string;
  href: string;
  /** Up to a few sagas or services to name, each with its own link. */
  links?: { label: string; href: string }[];
}

/** Statuses of a saga still moving (one that stays in them past the stuck threshold is stuck). */
export const RUNNING_STATUSES = ["CREATED", "LOCKED", "EXECUTING", "CONFIRMING", "COMPENSATING"];

export interface AttentionInput {
  now: number;
  breakers: Breaker[] | null;
  /** Sagas in COMPENSATION_FAILED (a first page) and how many there are. */
  compensationFailed: { items: TxView[]; total: number } | null;
  /** Running sagas created before the stuck threshold (a first page) and how many there are. */
  oldRunning: { items: TxView[]; total: number } | null;
  alerts: RteEvent[] | null;
  recovery: RecoveryFigures | null;
  /** How far back alerts count as recent. */
  alertWindowMs?: number;
}

const SHOW = 3;
const txLink = (t: TxView) => ({ label: t.tx_id, href: `/transactions/${encodeURIComponent(t.tx_id)}` });
const plural = (n: number, one: string, many = `${one}s`) => `${n.toLocaleString()} ${n === 1 ? one : many}`;

/** Running sagas not updated for the recovery worker's stuck threshold. */
export function stuckSagas(running: TxView[], thresholdMs: number, now: number): TxView[] {
  return running.filter((t) => RUNNING_STATUSES.includes(t.status) && now - Date.parse(t.updated_at) >= thresholdMs);
}

/** Whether the recovery worker looks healthy: running, scanning on time, resuming what it finds. */
export function recoveryHealth(r: RecoveryFigures, now: number): { level: AttentionLevel; detail: string } {
  if (!r.running) return { level: "critical", detail: "The recovery worker is not running: stuck sagas are not resumed." };
  const last = r.last_run_at ? Date.parse(r.last_run_at) : null;
  // A scan may be a little late; three intervals without one means the worker is stalled.
  if (last == null) {
    return { level: "ok", detail: "Running; no scan yet." };
  }
  const age = now - last;
  if (age > 3 * Math.max(r.interval_ms, 1000)) return { level: "warning", detail: `No scan for ${Math.round(age / 1000)} s (every ${Math.round(r.interval_ms / 1000)} s expected).` };
  if (r.failed > 0) return { level: "warning", detail: `${plural(r.failed, "saga")} could not be resumed; ${r.processed.toLocaleString()} resumed.` };
  return { level: "ok", detail: `Running; last scan ${Math.max(0, Math.round(age / 1000))} s ago, ${r.processed.toLocaleString()} resumed.` };
}

/** The panel's items, most urgent first; recovery health always last. */
export function attentionItems(p: AttentionInput): AttentionItem[] {
  const items: AttentionItem[] = [];
  const open = (p.breakers ?? []).filter((b) => b.state !== "closed");
  if (open.length) {
    const full = open.filter((b) => b.state === "open");
    items.push({
      key: "breakers",
      level: full.length ? "critical" : "warning",
      title: full.length ? `${plural(full.length, "circuit breaker")} open` : `${plural(open.length, "circuit breaker")} half open`,
      detail: "Steps of these services fail fast until the breaker closes.",
      href: "/circuit-breakers",
      links: open.slice(0, SHOW).map((b) => ({ label: `${b.service} (${b.state.replace("_", " ")})`, href: "/circuit-breakers" })),
    });
  }
  if (p.compensationFailed && p.compensationFailed.total > 0) {
    items.push({
      key: "compensation-failed",
      level: "critical",
      title: `${plural(p.compensationFailed.total, "saga")} with failed compensation`,
      detail: "Their undo did not finish: retry the compensation or settle them by hand.",
      href: "/transactions?status=COMPENSATION_FAILED",
      links: p.compensationFailed.items.slice(0, SHOW).map(txLink),
    });
  }
  if (p.oldRunning && p.recovery) {
    const stuck = stuckSagas(p.oldRunning.items, p.recovery.stuck_threshold_ms, p.now);
    if (stuck.length) {
      const more = p.oldRunning.total > p.oldRunning.items.length;
      items.push({
        key: "stuck",
        level: "warning",
        title: `${more ? "At least " : ""}${plural(stuck.length, "saga")} stuck`,
        detail: `Not advanced for over ${Math.round(p.recovery.stuck_threshold_ms / 60000)} min; recovery resumes them, or an operator can.`,
        href: `/transactions?${new URLSearchParams([...RUNNING_STATUSES.map((s) => ["status", s]), ["to", new Date(p.now - p.recovery.stuck_threshold_ms).toISOString()]])}`,
        links: stuck.slice(0, SHOW).map(txLink),
      });
    }
  }
  const windowMs = p.alertWindowMs ?? 24 * 3_600_000;
  const recent = (p.alerts ?? []).filter((e) => e.type === "alert.critical" && p.now - Date.parse(e.timestamp) <= windowMs);
  if (recent.length) {
    items.push({
      key: "alerts",
      level: "critical",
      title: `${plural(recent.length, "critical alert")} in the last ${Math.round(windowMs / 3_600_000)} h`,
      detail: recent[0].error ?? String(recent[0].data?.message ?? "see the events"),
      href: "/events?type=alert.critical",
      links: recent
        .filter((e) => e.tx_id)
        .slice(0, SHOW)
        .map((e) => ({ label: e.tx_id!, href: `/transactions/${encodeURIComponent(e.tx_id!)}` })),
    });
  }
  if (p.recovery) {
    const h = recoveryHealth(p.recovery, p.now);
    items.push({ key: "recovery", level: h.level, title: h.level === "ok" ? "Recovery healthy" : "Recovery needs a look", detail: h.detail, href: "/recovery" });
  }
  return items;
}
