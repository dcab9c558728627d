// Circuit breakers: state, counts, reset; where each host keeps its own, every host's states.

import { useEffect, useState } from "preact/hooks";
import { api, ApiError } from "../api";
import { BreakerHostsView } from "../components/breakers";
import { ConfirmDialog } from "../components/dialog";
import { Empty, ErrorState, Loading, PageHeader, StatusBadge } from "../components/ui";
import { useApi } from "../hooks";
import { subscribe } from "../stream";
import type { Breaker, BreakersResponse } from "../types";

export function Breakers() {
  const list = useApi<BreakersResponse>("/api/circuit-breakers", 5000);
  const [busy, setBusy] = useState<string | null>(null);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  useEffect(() => subscribe((e) => e.type.startsWith("circuit.") && list.reload()), [list.reload]);

  const [confirm, setConfirm] = useState<Breaker | null>(null);
  const [error, setError] = useState<string | null>(null);

  const reset = async (service: string, reason: string) => {
    setBusy(service);
    setMessage(null);
    setError(null);
    try {
      await api(`/api/circuit-breakers/${encodeURIComponent(service)}/reset`, { method: "POST", json: { reason } });
      setMessage({ ok: true, text: `Breaker for ${service} reset to closed.` });
      setConfirm(null);
      list.reload();
    } catch (e) {
      setError(`Could not reset ${service}: ${(e as ApiError).message}`);
    } finally {
      setBusy(null);
    }
  };

  const rows = [...(list.data?.circuit_breakers ?? [])].sort((a, b) => a.service.localeCompare(b.service));
  return (
    <>
      <PageHeader title="Circuit breakers">
        <button type="button" class="btn" onClick={list.reload} disabled={list.loading}>
          Refresh
        </button>
      </PageHeader>
      <p class="lead muted">
        One breaker per service a step declares. After too many consecutive failures it opens and calls fail fast; after a
        pause it lets a few trial calls through (half open) and closes again when they succeed.
      </p>
      {message ? (
        <div class={`banner ${message.ok ? "banner-ok" : "banner-bad"}`} role="status">
          {message.text}
        </div>
      ) : null}
      {list.error ? (
        <ErrorState error={list.error} what="circuit breakers" onRetry={list.reload} />
      ) : !list.data ? (
        <Loading />
      ) : (
        <>
          {rows.length === 0 ? (
            <Empty title="No circuit breakers yet">A breaker appears the first time a step of its service is called.</Empty>
          ) : (
            <div class="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Service</th>
                    <th scope="col">State</th>
                    <th scope="col" class="num">
                      Consecutive failures
                    </th>
                    <th scope="col" class="num">
                      Total failures
                    </th>
                    <th scope="col" class="num">
                      Total successes
                    </th>
                    <th scope="col">
                      <span class="sr-only">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map((b) => (
                    <tr key={b.service}>
                      <th scope="row">{b.service}</th>
                      <td>
                        <StatusBadge status={b.state} />
                      </td>
                      <td class="num">{b.consecutive_failures}</td>
                      <td class="num">{b.total_failures}</td>
                      <td class="num">{b.total_successes}</td>
                      <td class="actions">
                        <button type="button" class="btn btn-small" disabled={busy === b.service} onClick={() => (setError(null), setConfirm(b))} aria-label={`Reset breaker ${b.service}`}>
                          {busy === b.service ? "Resetting…" : "Reset"}
                        </button>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <BreakerHostsView shared={list.data.shared} hosts={list.data.hosts} />
          {confirm ? (
            <ConfirmDialog
              title={`Reset the breaker for ${confirm.service}?`}
              confirmLabel="Reset breaker"
              danger={confirm.state !== "closed"}
              reasonRequired
              busy={busy === confirm.service}
              error={error}
              placeholder="Why? Recorded in the circuit.reset event."
              description={
                <>
                  <p>
                    It is <StatusBadge status={confirm.state} /> after {confirm.consecutive_failures} consecutive failure
                    {confirm.consecutive_failures === 1 ? "" : "s"}. Closing it lets every call through again at once; if
                    the service is still failing, the breaker opens again.
                  </p>
                  {list.data.shared === false ? <p class="muted">Without Redis this resets the breaker on this host only.</p> : null}
                </>
              }
              onClose={() => setConfirm(null)}
              onConfirm={(reason) => reset(confirm.service, reason)}
            />
          ) : null}
        </>
      )}
    </>
  );
}
