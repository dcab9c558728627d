// Recovery worker figures.

import { ErrorState, Loading, PageHeader } from "../components/ui";
import { useApi, useNow } from "../hooks";
import { formatAgo, formatDuration, formatTime } from "../lib/format";
import type { RecoveryStats } from "../types";

export function Recovery() {
  const r = useApi<RecoveryStats>("/api/recovery/stats", 5000);
  const now = useNow(5000);
  return (
    <>
      <PageHeader title="Recovery">
        <button type="button" class="btn" onClick={r.reload} disabled={r.loading}>
          Refresh
        </button>
      </PageHeader>
      <p class="lead muted">
        The recovery worker takes over sagas that no host has advanced for longer than the stuck threshold, and carries them on
        to the end.
      </p>
      {r.error ? (
        <ErrorState error={r.error} what="recovery figures" onRetry={r.reload} />
      ) : !r.data ? (
        <Loading />
      ) : (
        <>
          <section class="cards" aria-label="Recovery worker">
            <div class={`card ${r.data.running ? "card-ok" : "card-bad"}`}>
              <span class="card-label">Worker</span>
              <span class="card-value">{r.data.running ? "Running" : "Stopped"}</span>
            </div>
            <div class="card">
              <span class="card-label">Scanned</span>
              <span class="card-value">{r.data.scanned.toLocaleString()}</span>
              <span class="card-hint">sagas examined</span>
            </div>
            <div class="card card-ok">
              <span class="card-label">Processed</span>
              <span class="card-value">{r.data.processed.toLocaleString()}</span>
              <span class="card-hint">taken over</span>
            </div>
            <div class={`card ${r.data.failed ? "card-bad" : ""}`}>
              <span class="card-label">Failed</span>
              <span class="card-value">{r.data.failed.toLocaleString()}</span>
              <span class="card-hint">could not be recovered</span>
            </div>
          </section>
          <section class="panel">
            <dl class="fields">
              <div class="field">
                <dt>Scan interval</dt>
                <dd>{formatDuration(r.data.interval_ms)}</dd>
              </div>
              <div class="field">
                <dt>Stuck threshold</dt>
                <dd>{formatDuration(r.data.stuck_threshold_ms)}</dd>
              </div>
              <div class="field">
                <dt>Last run</dt>
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
                <dd>{formatDuration(r.data.last_run_duration_ms)}</dd>
              </div>
            </dl>
          </section>
        </>
      )}
    </>
  );
}
