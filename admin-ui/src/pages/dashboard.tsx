// Dashboard: totals, status distribution and completed/failed over time.

import { useEffect, useState } from "preact/hooks";
import { ErrorState, Loading, PageHeader } from "../components/ui";
import { useApi, useDebounced, useNow } from "../hooks";
import { StatusPatterns, StatusSwatch, statusFill } from "../components/patterns";
import { attentionItems, RUNNING_STATUSES, type AttentionLevel } from "../lib/attention";
import { barGroups, donutSlices } from "../lib/charts";
import { filtersToQuery, DEFAULT_FILTERS } from "../lib/query";
import { statusLabel, statusTone, TONE_COLOURS } from "../lib/status";
import { Link } from "../router";
import { subscribe } from "../stream";
import { TX_STATUSES, type BreakersResponse, type RecoveryStats, type RteEvent, type Stats, type StatsTimeline, type TxPage } from "../types";

function listLink(status: string[]): string {
  const q = filtersToQuery({ ...DEFAULT_FILTERS, status });
  return q ? `/transactions?${q}` : "/transactions";
}

const RUNNING = RUNNING_STATUSES;

/** Chart ranges, shortest first: what an operator watching an incident or a week picks. */
const RANGES: { key: string; label: string; query: string }[] = [
  { key: "15m", label: "Last 15 minutes", query: "minutes=15" },
  { key: "1h", label: "Last hour", query: "hours=1" },
  { key: "6h", label: "Last 6 hours", query: "hours=6" },
  { key: "24h", label: "Last 24 hours", query: "hours=24" },
  { key: "3d", label: "Last 3 days", query: "hours=72" },
  { key: "7d", label: "Last 7 days", query: "hours=168" },
];

export function Dashboard() {
  const stats = useApi<Stats>("/api/stats", 15000);
  const [range, setRange] = useState("24h");
  const timeline = useApi<StatsTimeline>(`/api/stats/timeline?${(RANGES.find((r) => r.key === range) ?? RANGES[3]).query}`, range === "15m" || range === "1h" ? 15000 : 60000);
  const refresh = useDebounced(() => {
    stats.reload();
    timeline.reload();
  }, 1500);
  useEffect(() => subscribe((e) => (e.type.startsWith("tx.") || e.type === "lagged") && refresh()), [refresh]);

  return (
    <>
      <PageHeader title="Dashboard">
        <Link class="btn btn-primary" href="/start">
          Start saga
        </Link>
      </PageHeader>
      <Attention />
      {stats.error ? (
        <ErrorState error={stats.error} what="statistics" onRetry={stats.reload} />
      ) : !stats.data ? (
        <Loading />
      ) : (
        <>
          <section class="cards" aria-label="Totals">
            <StatCard label="Total" value={stats.data.total_transactions} href="/transactions" />
            <StatCard label="Running" value={stats.data.pending_transactions} href={listLink(RUNNING)} tone="run" />
            <StatCard label="Completed" value={count(stats.data, ["COMPLETED"])} href={listLink(["COMPLETED"])} tone="ok" />
            <StatCard label="Failed" value={count(stats.data, FAILED)} href={listLink(FAILED)} tone={count(stats.data, FAILED) ? "bad" : undefined} hint="incl. timed out" />
            <StatCard label="Compensated" value={count(stats.data, ["COMPENSATED"])} href={listLink(["COMPENSATED"])} tone="undone" hint="rolled back" />
            <StatCard label="Cancelled" value={count(stats.data, ["CANCELLED"])} href={listLink(["CANCELLED"])} tone="muted" hint="by an operator" />
            <StatCard
              label="Compensation failed"
              value={stats.data.compensation_failed_transactions}
              href={listLink(["COMPENSATION_FAILED"])}
              tone={stats.data.compensation_failed_transactions ? "critical" : undefined}
              hint="needs an operator"
            />
          </section>
          <div class="grid-2">
            <section class="panel" aria-labelledby="dist-title">
              <h2 id="dist-title">Status distribution</h2>
              <StatusDonut byStatus={stats.data.by_status} total={stats.data.total_transactions} />
            </section>
            <section class="panel" aria-labelledby="time-title">
              <div class="panel-head">
                <h2 id="time-title">Finished sagas over time</h2>
                <label class="inline">
                  <span class="sr-only">Time range</span>
                  <select value={range} onChange={(e) => setRange((e.target as HTMLSelectElement).value)}>
                    {RANGES.map((r) => (
                      <option key={r.key} value={r.key}>
                        {r.label}
                      </option>
                    ))}
                  </select>
                </label>
              </div>
              {timeline.error ? (
                <ErrorState error={timeline.error} what="the timeline" onRetry={timeline.reload} />
              ) : !timeline.data ? (
                <Loading />
              ) : (
                <TimeBars data={timeline.data} />
              )}
            </section>
          </div>
          <ByType byType={stats.data.by_type} />
        </>
      )}
    </>
  );
}

/** Failed outright or timed out: compensated (rolled back) and cancelled sagas have cards of their own. */
const FAILED = ["FAILED", "TIMEOUT"];

function count(stats: Stats, statuses: string[]): number {
  return statuses.reduce((n, s) => n + (stats.by_status[s] ?? 0), 0);
}

const LEVEL_MARK: Record<AttentionLevel, string> = { critical: "✖", warning: "▲", ok: "✔" };
const LEVEL_WORD: Record<AttentionLevel, string> = { critical: "Critical", warning: "Warning", ok: "OK" };

/** The first panel: open breakers, sagas needing an operator, recent critical alerts, recovery health. */
function Attention() {
  const now = useNow(30000);
  const breakers = useApi<BreakersResponse>("/api/circuit-breakers", 15000);
  const compFailed = useApi<TxPage>("/api/transactions?status=COMPENSATION_FAILED&page=1&page_size=5", 15000);
  const recovery = useApi<RecoveryStats>("/api/recovery/stats", 15000);
  const alerts = useApi<{ events: RteEvent[] }>("/api/events?type=alert.critical&limit=50", 15000);
  const threshold = recovery.data?.stuck_threshold_ms;
  // Stuck sagas were created before the threshold at least; rounding keeps the URL steady between polls.
  const before = threshold != null ? new Date(Math.floor((now - threshold) / 30000) * 30000).toISOString() : null;
  const oldRunning = useApi<TxPage>(
    before ? `/api/transactions?${new URLSearchParams([...RUNNING_STATUSES.map((s) => ["status", s]), ["to", before], ["page", "1"], ["page_size", "100"]])}` : null,
    15000,
  );
  const refresh = useDebounced(() => {
    breakers.reload();
    compFailed.reload();
    alerts.reload();
  }, 1000);
  useEffect(() => subscribe((e) => (e.type.startsWith("circuit.") || e.type.startsWith("alert.") || e.type === "tx.compensation_failed" || e.type === "lagged") && refresh()), [refresh]);

  const items = attentionItems({
    now,
    breakers: breakers.data?.circuit_breakers ?? null,
    compensationFailed: compFailed.data ? { items: compFailed.data.transactions, total: compFailed.data.total } : null,
    oldRunning: oldRunning.data ? { items: oldRunning.data.transactions, total: oldRunning.data.total } : null,
    alerts: alerts.data?.events ?? null,
    recovery: recovery.data,
  });
  const failedChecks = [
    [breakers.error, "circuit breakers"],
    [compFailed.error, "failed compensations"],
    [recovery.error, "recovery"],
    [alerts.error, "alerts"],
  ].filter(([e]) => e).map(([, what]) => what as string);
  const problems = items.filter((i) => i.level !== "ok").length;
  const loading = !breakers.data && !breakers.error;
  return (
    <section class={`panel attention${problems ? " attention-problems" : ""}`} aria-labelledby="attention-title">
      <div class="panel-head">
        <h2 id="attention-title">Needs attention</h2>
        <span class="sub" role="status">
          {loading ? "checking…" : problems ? `${problems} ${problems === 1 ? "item" : "items"}` : "nothing right now"}
        </span>
      </div>
      <ul class="attention-list">
        {items.map((i) => (
          <li key={i.key} class={`attention-item level-${i.level}`} data-key={i.key}>
            <span class="level-mark" aria-hidden="true">
              {LEVEL_MARK[i.level]}
            </span>
            <div class="attention-body">
              <span class="sr-only">{LEVEL_WORD[i.level]}: </span>
              <Link href={i.href} class="attention-title">
                {i.title}
              </Link>
              <div class="sub">{i.detail}</div>
              {i.links?.length ? (
                <div class="attention-links">
                  {i.links.map((l) => (
                    <Link key={l.label} href={l.href} class="mono tag">
                      {l.label}
                    </Link>
                  ))}
                </div>
              ) : null}
            </div>
          </li>
        ))}
        {failedChecks.length ? (
          <li class="attention-item level-warning" data-key="unavailable">
            <span class="level-mark" aria-hidden="true">
              {LEVEL_MARK.warning}
            </span>
            <div class="attention-body">
              <span class="attention-title">Some checks could not run</span>
              <div class="sub">Could not load {failedChecks.join(", ")}.</div>
            </div>
          </li>
        ) : null}
      </ul>
    </section>
  );
}

function StatCard(p: { label: string; value: number; href: string; tone?: string; hint?: string }) {
  return (
    <Link href={p.href} class={`card ${p.tone ? `card-${p.tone}` : ""}`}>
      <span class="card-label">{p.label}</span>
      <span class="card-value">{p.value.toLocaleString()}</span>
      {p.hint ? <span class="card-hint">{p.hint}</span> : null}
    </Link>
  );
}

function StatusDonut({ byStatus, total }: { byStatus: Record<string, number>; total: number }) {
  const entries = TX_STATUSES.map((s) => [s, byStatus[s] ?? 0] as [string, number]);
  const slices = donutSlices(entries, 90, 90, 80, 52);
  return (
    <div class="donut-wrap">
      <svg viewBox="0 0 180 180" width="180" height="180" role="img" aria-label={`Status distribution of ${total} transactions`}>
        <StatusPatterns />
        {slices.length === 0 ? <circle cx="90" cy="90" r="66" fill="none" stroke="#e5e7eb" stroke-width="28" /> : null}
        {slices.map((s) => (
          <path key={s.key} d={s.path} fill={statusFill(s.key)} class={`slice slice-${s.key}`}>
            <title>
              {statusLabel(s.key)}: {s.value} ({Math.round(s.fraction * 100)}%)
            </title>
          </path>
        ))}
        <text x="90" y="88" text-anchor="middle" class="donut-total">
          {total.toLocaleString()}
        </text>
        <text x="90" y="108" text-anchor="middle" class="donut-caption">
          transactions
        </text>
      </svg>
      {slices.length ? (
        <ul class="legend">
          {entries
            .filter(([, n]) => n > 0)
            .map(([s, n]) => (
              <li key={s}>
                <Link href={listLink([s])}>
                  <StatusSwatch status={s} />
                  <span class="legend-name">{statusLabel(s)}</span>
                  <span class="legend-count">{n.toLocaleString()}</span>
                  <span class="legend-share muted">{Math.round((n / total) * 100)}%</span>
                </Link>
              </li>
            ))}
        </ul>
      ) : (
        <p class="muted">No transactions yet.</p>
      )}
    </div>
  );
}

/** "14:05" for minute buckets, "14:00" for hours, with the day when the range spans days. */
export function bucketLabel(at: string, bucketSeconds: number, multiDay: boolean): string {
  const d = new Date(at);
  const day = `${d.getMonth() + 1}/${d.getDate()}`;
  const time = `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
  return bucketSeconds >= 86400 ? day : multiDay ? `${day} ${time}` : time;
}

function TimeBars({ data }: { data: StatsTimeline }) {
  const W = 560;
  const H = 200;
  const CHAR = 6.2; // width of an axis-label character at 10.5px, a little generous
  const maxCount = Math.max(0, ...data.points.map((p) => Math.max(p.completed, p.failed)));
  // Room on the left for the widest y label, so that big counts are not clipped.
  const left = Math.max(28, Math.ceil(String(Math.max(1, maxCount) * 2).length * CHAR) + 10);
  const box = { x: left, y: 10, width: W - left - 8, height: H - 40 };
  const { groups, max } = barGroups(data.points, box);
  const total = data.points.reduce((n, p) => n + p.completed + p.failed, 0);
  const multiDay = data.points.length * data.bucket_seconds > 86400;
  const labels = data.points.map((p) => bucketLabel(p.at, data.bucket_seconds, multiDay));
  const widest = Math.max(0, ...labels.map((l) => l.length)) * CHAR;
  const labelEvery = Math.max(1, Math.ceil((groups.length * (widest + 12)) / box.width));
  // Keep each x label inside the chart: centred on its bars, pulled in at the edges.
  const labelX = (g: { x: number; width: number }, text: string) => {
    const half = (text.length * CHAR) / 2;
    return Math.min(W - half - 2, Math.max(half + 2, g.x + g.width));
  };
  return (
    <>
      <svg class="bars" viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`Completed and failed sagas per bucket; ${total} in range`}>
        {[0, 0.5, 1].map((f) => {
          const y = box.y + box.height - f * box.height;
          return (
            <g key={f}>
              <line x1={box.x} x2={box.x + box.width} y1={y} y2={y} class="gridline" />
              <text x={box.x - 6} y={y + 4} text-anchor="end" class="axis-label">
                {Math.round(max * f)}
              </text>
            </g>
          );
        })}
        {groups.map((g, i) => {
          const p = data.points[i];
          return (
            <g key={g.at}>
              <title>
                {new Date(g.at).toLocaleString()}: {p.completed} completed, {p.failed} failed
              </title>
              <rect x={g.x} y={g.completed.y} width={g.width} height={g.completed.height} fill={TONE_COLOURS.ok} rx="1" class="bar-completed" />
              <rect x={g.x + g.width} y={g.failed.y} width={g.width} height={g.failed.height} fill={`url(#${FAILED_PATTERN})`} rx="1" class="bar-failed" />
              {i % labelEvery === 0 ? (
                <text x={labelX(g, labels[i])} y={H - 12} text-anchor="middle" class="axis-label">
                  {labels[i]}
                </text>
              ) : null}
            </g>
          );
        })}
        <defs>
          <FailedPattern />
        </defs>
      </svg>
      <div class="chart-key">
        <span>
          <span class="swatch" style={{ background: TONE_COLOURS.ok }} /> Completed
        </span>
        <span>
          <svg class="swatch" viewBox="0 0 10 10" aria-hidden="true">
            <rect width="10" height="10" fill={`url(#${FAILED_PATTERN})`} />
          </svg>{" "}
          Failed, compensated, timed out or cancelled (hatched)
        </span>
        {total === 0 ? <span class="muted">No sagas finished in this range.</span> : null}
      </div>
    </>
  );
}

const FAILED_PATTERN = "failed-hatch";

/** Diagonal hatching over the failure colour: the two bar kinds differ in shape, not only in hue. */
function FailedPattern() {
  return (
    <pattern id={FAILED_PATTERN} patternUnits="userSpaceOnUse" width="5" height="5" patternTransform="rotate(45)">
      <rect width="5" height="5" fill={TONE_COLOURS.bad} />
      <line x1="0" y1="0" x2="0" y2="5" stroke="#fff" stroke-width="1.6" opacity="0.75" />
    </pattern>
  );
}

function ByType({ byType }: { byType: Record<string, Record<string, number>> }) {
  const types = Object.keys(byType).sort();
  if (!types.length) return null;
  return (
    <section class="panel" aria-labelledby="type-title">
      <h2 id="type-title">By saga type</h2>
      <div class="table-wrap">
        <table class="by-type">
          <thead>
            <tr>
              <th scope="col">Type</th>
              <th scope="col" class="num">
                Total
              </th>
              <th scope="col">By status</th>
            </tr>
          </thead>
          <tbody>
            {types.map((t) => (
              <tr key={t}>
                <th scope="row">
                  <Link href={`/transactions?${new URLSearchParams({ tx_type: t })}`}>{t}</Link>
                </th>
                <td class="num">{Object.values(byType[t]).reduce((a, b) => a + b, 0).toLocaleString()}</td>
                <td>
                  <div class="type-counts">
                    {TX_STATUSES.filter((s) => byType[t][s]).map((s) => (
                      <Link key={s} href={`/transactions?${new URLSearchParams({ tx_type: t, status: s })}`} title={`${byType[t][s]} ${statusLabel(s).toLowerCase()}`}>
                        <span class={`badge tone-${statusTone(s)}`}>
                          {statusLabel(s)} {byType[t][s].toLocaleString()}
                        </span>
                      </Link>
                    ))}
                  </div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
