// Event-log filters ↔ query strings: the page URL and the API call use the same names
// (`type`, `tx`, `step`, `since`, `until`, `page`), so a copied link shows the same events.

import type { RteEvent } from "../types";

export interface EventFilters {
  type: string;
  /** Part of a saga id. */
  tx: string;
  step: string;
  /** RFC 3339 or "". */
  since: string;
  /** RFC 3339 or "". */
  until: string;
  page: number;
}

export const EVENTS_PAGE_SIZE = 100;
export const NO_EVENT_FILTERS: EventFilters = { type: "", tx: "", step: "", since: "", until: "", page: 1 };

export function parseEventFilters(search: string): EventFilters {
  const p = new URLSearchParams(search);
  const page = Number.parseInt(p.get("page") ?? "", 10);
  return {
    type: p.get("type")?.trim() ?? "",
    tx: p.get("tx")?.trim() ?? "",
    step: p.get("step")?.trim() ?? "",
    since: p.get("since")?.trim() ?? "",
    until: p.get("until")?.trim() ?? "",
    page: Number.isFinite(page) && page >= 1 ? page : 1,
  };
}

/** Filters → query string (no "?"); `forApi` adds the page size and always the page. */
export function eventFiltersToQuery(f: EventFilters, forApi = false): string {
  const p = new URLSearchParams();
  for (const k of ["type", "tx", "step", "since", "until"] as const) if (f[k]) p.set(k, f[k]);
  if (forApi || f.page !== 1) p.set("page", String(f.page));
  if (forApi) p.set("limit", String(EVENTS_PAGE_SIZE));
  return p.toString();
}

/** Whether a live event belongs in the list the filters select (as the host would decide). */
export function eventMatches(e: RteEvent, f: EventFilters): boolean {
  if (f.type && !f.type.split(",").includes(e.type)) return false;
  if (f.tx && !(e.tx_id ?? "").includes(f.tx)) return false;
  if (f.step && e.step_name !== f.step) return false;
  const t = Date.parse(e.timestamp);
  if (f.since && t < Date.parse(f.since)) return false;
  if (f.until && t >= Date.parse(f.until)) return false;
  return true;
}

export function eventKey(e: RteEvent): string {
  return `${e.timestamp}|${e.type}|${e.tx_id ?? ""}|${e.step_name ?? ""}`;
}
