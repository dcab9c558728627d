// Dashboard: totals, status distribution and completed/failed over time.

import { useEffect, useState } from "preact/hooks";
import { ErrorState, Loading, PageHeader, StatusBadge } from "../components/ui";
import { useApi, useDebounced } from "../hooks";
import { barGroups, donutSlices } from "../lib/charts";
import { filtersToQuery, DEFAULT_FILTERS } from "../lib/query";
import { statusColour, statusLabel, TONE_COLOURS } from "../lib/status";
import { Link } from "../router";
import { subscribe } from "../stream";
import { TX_STATUSES, type Stats, type StatsTimeline } from "../types";

function listLink(status: string[]): string {
  const q = filtersToQuery({ ...DEFAULT_FILTERS, status });
  return q ? `/transactions?${q}` : "/transactions";
}

const RUNNING = ["CREATED", "LOCKED", "EXECUTING", "CONFIRMING", "COMPENSATING"];
const FAILED = ["FAILED", "COMPENSATED", "TIMEOUT", "CANCELLED"];

export function Dashboard() {
  const stats = useApi<Stats>("/api/stats", 15000);
  const [hours, setHours] = useState(24);
  const timeline = useApi<StatsTimeline>(`/api/stats/timeline?hours=${hours}`, 60000);
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
      {stats.error ? (
        <ErrorState error={stats.error} what="statistics" onRetry={stats.reload} />
      ) : !stats.data ? (
        <Loading />
      ) : (
        <>
          <section class="cards" aria-label="Totals">
            <StatCard label="Total" value={stats.data.total_transactions} href="/transactions" />
            <StatCard label="Running" value={stats.data.pending_transactions} href={listLink(RUNNING)} tone="run" />
            <StatCard label="Completed" value={stats.data.completed_transactions} href={listLink(["COMPLETED"])} tone="ok" />
            <StatCard label="Failed" value={stats.data.failed_transactions} href={listLink(FAILED)} tone="warn" hint="incl. compensated, timed out, cancelled" />
            <StatCard
              label="Compensation failed"
              value={stats.data.compensation_failed_transactions}
              href={listLink(["COMPENSATION_FAILED"])}
              tone={stats.data.compensation_failed_transactions ? "bad" : undefined}
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
                  <select value={hours} onChange={(e) => setHours(Number((e.target as HTMLSelectElement).value))}>
                    <option value={6}>Last 6 hours</option>
                    <option value={24}>Last 24 hours</option>
                    <option value={72}>Last 3 days</option>
                    <option value={168}>Last 7 days</option>
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
        {slices.length === 0 ? <circle cx="90" cy="90" r="66" fill="none" stroke="#e5e7eb" stroke-width="28" /> : null}
        {slices.map((s) => (
          <path key={s.key} d={s.path} fill={statusColour(s.key)} opacity={s.key === "CANCELLED" ? 0.6 : 1}>
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
                  <span class="swatch" style={{ background: statusColour(s) }} aria-hidden="true" />
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

function TimeBars({ data }: { data: StatsTimeline }) {
  const W = 560;
  const H = 200;
  const box = { x: 36, y: 10, width: W - 46, height: H - 40 };
  const { groups, max } = barGroups(data.points, box);
  const total = data.points.reduce((n, p) => n + p.completed + p.failed, 0);
  const labelEvery = Math.max(1, Math.ceil(groups.length / 8));
  const multiDay = data.points.length * data.bucket_seconds > 86400;
  const hourLabel = (at: string) => {
    const d = new Date(at);
    const day = `${d.getMonth() + 1}/${d.getDate()}`;
    const hour = `${String(d.getHours()).padStart(2, "0")}:00`;
    return data.bucket_seconds >= 86400 ? day : multiDay ? `${day} ${hour}` : hour;
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
              <rect x={g.x} y={g.completed.y} width={g.width} height={g.completed.height} fill={TONE_COLOURS.ok} rx="1" />
              <rect x={g.x + g.width} y={g.failed.y} width={g.width} height={g.failed.height} fill={TONE_COLOURS.bad} rx="1" />
              {i % labelEvery === 0 ? (
                <text x={g.x + g.width} y={H - 12} text-anchor="middle" class="axis-label">
                  {hourLabel(g.at)}
                </text>
              ) : null}
            </g>
          );
        })}
      </svg>
      <div class="chart-key">
        <span>
          <span class="swatch" style={{ background: TONE_COLOURS.ok }} /> Completed
        </span>
        <span>
          <span class="swatch" style={{ background: TONE_COLOURS.bad }} /> Failed, compensated, timed out or cancelled
        </span>
        {total === 0 ? <span class="muted">No sagas finished in this range.</span> : null}
      </div>
    </>
  );
}

function ByType({ byType }: { byType: Record<string, Record<string, number>> }) {
  const types = Object.keys(byType).sort();
  if (!types.length) return null;
  const used = TX_STATUSES.filter((s) => types.some((t) => byType[t][s]));
  return (
    <section class="panel" aria-labelledby="type-title">
      <h2 id="type-title">By saga type</h2>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Type</th>
              {used.map((s) => (
                <th scope="col" key={s}>
                  <StatusBadge status={s} />
                </th>
              ))}
              <th scope="col" class="num">
                Total
              </th>
            </tr>
          </thead>
          <tbody>
            {types.map((t) => (
              <tr key={t}>
                <th scope="row">
                  <Link href={`/transactions?${new URLSearchParams({ tx_type: t })}`}>{t}</Link>
                </th>
                {used.map((s) => (
                  <td key={s} class="num">
                    {byType[t][s] ? (
                      <Link href={`/transactions?${new URLSearchParams({ tx_type: t, status: s })}`}>{byType[t][s]}</Link>
                    ) : (
                      <span class="muted">0</span>
                    )}
                  </td>
                ))}
                <td class="num">{Object.values(byType[t]).reduce((a, b) => a + b, 0)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
