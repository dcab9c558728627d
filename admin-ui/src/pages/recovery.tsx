// Recovery worker figures: totals over every host sharing the database, then each host's own.

import { RecoveryHostsTable } from "../components/cluster";
import { ErrorState, Loading, PageHeader } from "../components/ui";
import { useApi, useNow } from "../hooks";
import { hostCount } from "../lib/cluster";
import { formatAgo, formatDuration, formatTime } from "../lib/format";
import type { RecoveryStats } from "../types";

export function Recovery() {
  const r = useApi<RecoveryStats>("/api/recovery/stats", 5000);
  const now = useNow(5000);
  const hosts = r.data?.hosts ?? [];
  const running = hosts.filter((h) => h.running).length;
  // Totals span several hosts only when there are several.
  const all = hosts.length > 1 ? ", all hosts" : "";
  return (
    <>
      <PageHeader title="Recovery">
        <button type="button" class="btn" onClick={r.reload} disabled={r.loading}>
          Refresh
        </button>
      </PageHeader>
      <p class="lead muted">
        The recovery worker takes over sagas that no host has advanced for longer than the stuck threshold, and carries them on
        to the end. Every host runs one; the figures below add up the workers of all hosts sharing the database.
      </p>
      {r.error ? (
        <ErrorState error={r.error} what="recovery figures" onRetry={r.reload} />
      ) : !r.data ? (
        <Loading />
      ) : (
        <>
          <section class="cards" aria-label={hosts.length > 1 ? "Recovery workers, all hosts" : "Recovery worker"}>
            <div class={`card ${!r.data.running ? "card-bad" : running < hosts.length ? "card-warn" : "card-ok"}`}>
              <span class="card-label">{hosts.length > 1 ? "Workers" : "Worker"}</span>
              <span class="card-value">{r.data.running ? "Running" : "Stopped"}</span>
              {hosts.length > 1 ? (
                <span class="card-hint">
                  on {running} of {hostCount(hosts.length)}
                </span>
              ) : null}
            </div>
            <div class="card">
              <span class="card-label">Scanned</span>
              <span class="card-value">{r.data.scanned.toLocaleString()}</span>
              <span class="card-hint">sagas examined{all}</span>
            </div>
            <div class="card card-ok">
              <span class="card-label">Processed</span>
              <span class="card-value">{r.data.processed.toLocaleString()}</span>
              <span class="card-hint">taken over{all}</span>
            </div>
            <div class={`card ${r.data.failed ? "card-bad" : ""}`}>
              <span class="card-label">Failed</span>
              <span class="card-value">{r.data.failed.toLocaleString()}</span>
              <span class="card-hint">could not be recovered{all}</span>
            </div>
          </section>
          <section class="panel">
            <dl class="fields">
              <div class="field">
                <dt>Scan interval{hosts.length > 1 ? ", this host" : ""}</dt>
                <dd>{formatDuration(r.data.interval_ms)}</dd>
              </div>
              <div class="field">
                <dt>Stuck threshold{hosts.length > 1 ? ", this host" : ""}</dt>
                <dd>{formatDuration(r.data.stuck_threshold_ms)}</dd>
              </div>
              <div class="field">
                <dt>{hosts.length > 1 ? "Last run, any host" : "Last run"}</dt>
                <dd>
                  {r.data.last_run_at ? (
                    <>
                      {formatTime(r.data.last_run_at)} <span class="muted">({formatAgo(r.data.last_run_at, now)})</span>
                    </>
                  ) : (
                    <span class="muted">not yet</span>
                  )}
                </dd>
              </div>
              <div class="field">
                <dt>Last run took</dt>
                <dd>{formatDuration(r.data.last_run_at ? r.data.last_run_duration_ms : null)}</dd>
              </div>
            </dl>
          </section>
          {hosts.length ? <RecoveryHostsTable hosts={hosts} now={now} /> : null}
        </>
      )}
    </>
  );
}
