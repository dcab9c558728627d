// Durations, times, byte sizes and JSON, formatted for people.

/** 850 → "850 ms", 1234 → "1.23 s", 65_000 → "1m 05s", 7_380_000 → "2h 03m", 2 days → "2d 0h". */
export function formatDuration(ms: number | null | undefined): string {
  if (ms == null || !Number.isFinite(ms)) return "—";
  if (ms < 0) ms = 0;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(2).replace(/\.?0+$/, "")} s`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1).replace(/\.0$/, "")} s`;
  const s = Math.floor(ms / 1000);
  const pad = (n: number) => String(n).padStart(2, "0");
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

/** Parse an RFC 3339 time to epoch milliseconds (null when absent or invalid). */
export function parseTime(t: string | null | undefined): number | null {
  if (!t) return null;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? null : ms;
}

/** Milliseconds between two RFC 3339 times; an open end is `now`. */
export function between(from: string | null | undefined, to: string | null | undefined, now = Date.now()): number | null {
  const a = parseTime(from);
  if (a == null) return null;
  return (parseTime(to) ?? now) - a;
}

/** "2024-05-01 14:03:22" in local time (with milliseconds when asked). */
export function formatTime(t: string | null | undefined, withMs = false): string {
  const ms = parseTime(t);
  if (ms == null) return "—";
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const base = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  return withMs ? `${base}.${p(d.getMilliseconds(), 3)}` : base;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** Compact local time for tables: "14:03:22" today, "Nov 27 14:03" this year, else "2023-11-27". */
export function formatShortTime(t: string | null | undefined, now = Date.now()): string {
  const ms = parseTime(t);
  if (ms == null) return "—";
  const d = new Date(ms);
  const n = new Date(now);
  const p = (x: number) => String(x).padStart(2, "0");
  if (d.toDateString() === n.toDateString()) return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  if (d.getFullYear() === n.getFullYear()) return `${MONTHS[d.getMonth()]} ${d.getDate()} ${p(d.getHours())}:${p(d.getMinutes())}`;
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** "09:26:10.872" for today, else the full time with milliseconds (for event lists). */
export function formatClock(t: string | null | undefined, now = Date.now()): string {
  const ms = parseTime(t);
  if (ms == null) return "—";
  return new Date(ms).toDateString() === new Date(now).toDateString() ? formatTime(t, true).slice(11) : formatTime(t, true);
}

/** "just now", "5 s ago", "3 min ago", "2 h ago", "4 d ago". */
export function formatAgo(t: string | null | undefined, now = Date.now()): string {
  const ms = parseTime(t);
  if (ms == null) return "—";
  const s = Math.round((now - ms) / 1000);
  if (s < 2) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

/** 1536 → "1.5 KiB". */
export function formatBytes(n: number | null | undefined): string {
  if (n == null) return "—";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0).replace(/\.0$/, "")} ${units[i]}`;
}

export function formatJson(value: unknown): string {
  return value === undefined ? "" : JSON.stringify(value, null, 2);
}

/** A local `datetime-local` input value ↔ RFC 3339 (UTC). */
export function localInputToIso(v: string): string {
  if (!v) return "";
  const ms = Date.parse(v);
  return Number.isNaN(ms) ? "" : new Date(ms).toISOString();
}

export function isoToLocalInput(iso: string): string {
  const ms = parseTime(iso);
  if (ms == null) return "";
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/**
 * Older hosts stored a step error's kind as a prefix ("permanent: …", "trap: …"). Only a
 * fallback now: steps and attempts carry `failure_kind` beside a plain message.
 */
export function splitErrorKind(error: string): { kind: string | null; message: string } {
  const m = /^(permanent|retryable|trap|timeout|unavailable):\s*(.*)$/s.exec(error);
  return m ? { kind: m[1], message: m[2] } : { kind: null, message: error };
}

/**
 * A failure's kind and message: the kind from its own field, the message as given, less the
 * kind prefix that rows written by older hosts still carry; with no kind, the prefix is read.
 */
export function failureOf(error: string | null | undefined, kind: string | null | undefined): { kind: string | null; message: string } | null {
  if (!error && !kind) return null;
  if (!kind) return splitErrorKind(error ?? "");
  const text = error ?? "";
  return { kind, message: text.startsWith(`${kind}: `) ? text.slice(kind.length + 2) : text };
}

/** "breaker_open" → "breaker open". */
export function kindLabel(kind: string): string {
  return kind.replace(/_/g, " ");
}

/** The first characters of a digest, for tight places (the full one goes in a tooltip). */
export function shortDigest(digest: string | null | undefined, n = 12): string {
  if (!digest) return "—";
  return digest.length > n ? `${digest.slice(0, n)}…` : digest;
}

/**
 * `text` cut into pieces between which a line may break: after every run of `max`
 * characters that holds no space (a hash, a URL, a padded message), so that such a token
 * wraps at known points instead of widening its table or breaking at any letter.
 */
export function breakPieces(text: string, max = 32): string[] {
  const pieces: string[] = [];
  let start = 0;
  let run = 0;
  for (let i = 0; i < text.length; i++) {
    run = /\s/.test(text[i]) ? 0 : run + 1;
    if (run > max) {
      pieces.push(text.slice(start, i));
      start = i;
      run = 1;
    }
  }
  pieces.push(text.slice(start));
  return pieces;
}

/** An event's data as `key=value` pairs separated by spaces (values as compact JSON). */
export function formatEventData(data: Record<string, unknown> | null | undefined): string {
  return Object.entries(data ?? {})
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v, null, 1).replace(/\s*\n\s*/g, " ")}`)
    .join("  ");
}

/** "2024-05-01" in local time. */
export function formatDay(t: string | null | undefined): string {
  const s = formatTime(t);
  return s === "—" ? s : s.slice(0, 10);
}
