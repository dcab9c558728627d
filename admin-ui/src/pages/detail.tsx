// One transaction: fields, timeline, steps, input/output, history, live events and the
// operator actions (force-complete, force-cancel, retry).

import { useEffect, useState } from "preact/hooks";
import { Fragment } from "preact";
import { api, ApiError } from "../api";
import { ConfirmDialog } from "../components/dialog";
import { Timeline } from "../components/timeline";
import { Breakable, CopyButton, Empty, ErrorState, Field, JsonBlock, Loading, PageHeader, StatusBadge } from "../components/ui";
import { useApi, useDebounced, useNow } from "../hooks";
import { between, failureOf, formatClock, formatDuration, formatTime, kindLabel, shortDigest } from "../lib/format";
import { canForceCancel, canForceComplete, canRetry, retryStartSteps } from "../lib/actions";
import { actorOf, historyKindLabel } from "../lib/history";
import { attemptTone } from "../lib/timeline";
import { failedStepOf, isTerminal, TONE_COLOURS } from "../lib/status";
import { shortHostId } from "../lib/cluster";
import { ordinal, positionOf } from "../lib/groups";
import { Link } from "../router";
import { subscribe, type StreamState } from "../stream";
import type { AttemptView, HistoryEntry, RteEvent, StepView, TxView, WaitView } from "../types";
import { replyBody, replyPath, type ReplyKind } from "../lib/waits";

type Action = "force-complete" | "force-cancel" | "retry";

const NOT_NOW = (status: string) => `Not available while the saga is ${status}`;

export function TxDetail({ txId }: { txId: string }) {
  const path = `/api/transactions/${encodeURIComponent(txId)}`;
  const tx = useApi<TxView>(path);
  const recent = useApi<{ events: RteEvent[] }>(`/api/events?tx_id=${encodeURIComponent(txId)}&limit=500`);
  const [live, setLive] = useState<RteEvent[]>([]);
  const [stream, setStream] = useState<StreamState>("connecting");
  const [action, setAction] = useState<Action | null>(null);
  const [answering, setAnswering] = useState<WaitView | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const reload = useDebounced(tx.reload, 250);
  const now = useNow(tx.data && !isTerminal(tx.data.status) ? 500 : 10000);

  useEffect(() => {
    setLive([]);
    return subscribe(
      (e) => {
        if (e.type === "lagged") return reload();
        if (e.tx_id !== txId) return;
        setLive((l) => [e, ...l].slice(0, 500));
        reload();
      },
      setStream,
    );
  }, [txId, reload]);

  const events = mergeEvents(live, recent.data?.events ?? []);

  if (tx.error && !tx.data) {
    return (
      <>
        <Back />
        {tx.error.status === 404 ? (
          <Empty title="Transaction not found">
            No transaction has the id <code>{txId}</code>; it may have been purged after its retention period.
          </Empty>
        ) : (
          <ErrorState error={tx.error} what="the transaction" onRetry={tx.reload} />
        )}
      </>
    );
  }
  if (!tx.data) return <Loading />;
  const t = tx.data;
  const steps = [...(t.steps ?? [])].sort((a, b) => a.step_index - b.step_index);

  return (
    <>
      <Back />
      <PageHeader title="Transaction">
        <span class={`live live-${stream}`} title={`event stream: ${stream}`}>
          {stream === "live" ? "Live" : stream === "connecting" ? "Connecting…" : "Not live"}
        </span>
        <button type="button" class="btn" onClick={() => setAction("retry")} disabled={!canRetry(t.status)} title={canRetry(t.status) ? undefined : NOT_NOW(t.status)}>
          Retry…
        </button>
        <button type="button" class="btn btn-danger-outline" onClick={() => setAction("force-cancel")} disabled={!canForceCancel(t.status)} title={canForceCancel(t.status) ? undefined : NOT_NOW(t.status)}>
          Force cancel…
        </button>
        <button type="button" class="btn btn-danger-outline" onClick={() => setAction("force-complete")} disabled={!canForceComplete(t.status)} title={canForceComplete(t.status) ? undefined : NOT_NOW(t.status)}>
          Force complete…
        </button>
      </PageHeader>
      <div class="tx-title">
        <code class="mono tx-id">{t.tx_id}</code>
        <CopyButton text={t.tx_id} label="Copy transaction id" />
        <StatusBadge status={t.status} />
        <span class="muted">{t.tx_type}</span>
      </div>
      {notice ? (
        <div class="notice" role="status">
          {notice}
          <button type="button" class="btn btn-small btn-ghost" onClick={() => setNotice(null)} aria-label="Dismiss">
            ×
          </button>
        </div>
      ) : null}
      {t.error ? (
        <div class="banner banner-bad" role="note">
          <strong>Error</strong> {t.error}
        </div>
      ) : null}
      {tx.error ? <ErrorState error={tx.error} what="the latest state" onRetry={tx.reload} /> : null}

      <section class="panel">
        <dl class="fields">
          <Field label="Type">{t.tx_type}</Field>
          <Field label="Status">
            <StatusBadge status={t.status} />
          </Field>
          <StepField tx={t} steps={steps} />
          <Field label="Retries">
            {t.retry_count} of {t.max_retries}
          </Field>
          <Field label="Created">{formatTime(t.created_at, true)}</Field>
          <Field label="Updated">{formatTime(t.updated_at, true)}</Field>
          <Field label="Completed">{formatTime(t.completed_at, true)}</Field>
          <Field label="Duration">{formatDuration(between(t.created_at, t.completed_at, now))}</Field>
          <Field label="Timeout">{formatDuration(t.timeout_ms)}</Field>
          <Field label="Deadline">{formatTime(t.deadline_at)}</Field>
          <Field label="Version">{t.version}</Field>
          <Field label="Lock keys">
            {t.lock_keys.length ? (
              t.lock_keys.map((k) => (
                <code key={k} class="tag">
                  {k}
                </code>
              ))
            ) : (
              <span class="muted">none</span>
            )}
          </Field>
        </dl>
      </section>

      <section class="panel" aria-labelledby="tl-title">
        <h2 id="tl-title">Timeline</h2>
        <Timeline tx={t} now={now} />
      </section>

      <section class="panel" aria-labelledby="steps-title">
        <h2 id="steps-title">Steps</h2>
        <StepsTable steps={steps} now={now} current={isTerminal(t.status) ? -1 : t.current_step} onAnswer={setAnswering} />
      </section>

      <section class="panel" aria-labelledby="attempts-title">
        <h2 id="attempts-title">Attempts</h2>
        <AttemptsTable attempts={t.attempts ?? []} now={now} />
      </section>

      <div class="grid-2">
        <section class="panel">
          <JsonBlock label="Input" value={t.input} />
        </section>
        <section class="panel">
          <JsonBlock label="Output" value={t.output} />
        </section>
      </div>

      <div class="grid-2">
        <section class="panel" aria-labelledby="hist-title">
          <h2 id="hist-title">History</h2>
          {t.history?.length ? (
            <ol class="history">
              {t.history.map((h, i) => (
                <HistoryLine key={i} h={h} now={now} />
              ))}
            </ol>
          ) : (
            <p class="muted">No history entries.</p>
          )}
        </section>
        <section class="panel" aria-labelledby="ev-title">
          <h2 id="ev-title">Events</h2>
          <p class="muted small">Recent events from the host's event log, which keeps only so many; the timeline, attempts and history above are stored with the saga.</p>
          {events.length ? (
            <ol class="history">
              {events.slice(0, 100).map((e, i) => (
                <li key={i}>
                  <time dateTime={e.timestamp} title={formatTime(e.timestamp, true)}>
                    {formatClock(e.timestamp, now)}
                  </time>
                  <span class="tag">{e.type}</span>
                  <span>
                    {e.step_name ? <strong>{e.step_name} </strong> : null}
                    {e.error ? <span class="err-text">{e.error}</span> : null}
                  </span>
                </li>
              ))}
            </ol>
          ) : (
            <p class="muted">{recent.error ? "Events are not available." : "The host holds no recent events for this saga."}</p>
          )}
        </section>
      </div>

      {answering ? (
        <AnswerDialog
          wait={answering}
          onClose={() => setAnswering(null)}
          onDone={() => {
            setAnswering(null);
            setNotice("Answer recorded; the step resumes with it.");
            tx.reload();
          }}
        />
      ) : null}
      {action ? (
        <ActionDialog
          action={action}
          tx={t}
          steps={steps}
          onClose={() => setAction(null)}
          onDone={(updated, label) => {
            setAction(null);
            setNotice(`${label} accepted; the saga is now ${updated?.status ?? "updating"}.`);
            tx.reload();
          }}
        />
      ) : null}
    </>
  );
}

function Back() {
  return (
    <Link href="/transactions" class="back">
      ‹ All transactions
    </Link>
  );
}

/** Live events first, then the fetched ones not already seen; newest first. */
function mergeEvents(live: RteEvent[], fetched: RteEvent[]): RteEvent[] {
  const key = (e: RteEvent) => `${e.timestamp}|${e.type}|${e.step_name ?? ""}`;
  const seen = new Set(live.map(key));
  return [...live, ...fetched.filter((e) => !seen.has(key(e)))].sort((a, b) => (a.timestamp < b.timestamp ? 1 : a.timestamp > b.timestamp ? -1 : 0));
}

/**
 * Where the saga is. Once a step's failure has ended the saga or turned it to compensation,
 * that step (`failed_step`): `current_step` walks back while compensating.
 */
function StepField({ tx, steps }: { tx: TxView; steps: StepView[] }) {
  const failed = failedStepOf(tx);
  const name = (i: number) => steps.find((s) => s.step_index === i)?.step_name;
  if (failed != null) {
    return (
      <Field label="Step">
        Failed at step {failed + 1} of {tx.total_steps}
        {name(failed) ? <span class="muted"> ({name(failed)})</span> : null}
        {tx.status === "COMPENSATING" ? <div class="sub">undoing step {tx.current_step + 1}</div> : null}
      </Field>
    );
  }
  const at = Math.min(tx.current_step, Math.max(0, tx.total_steps - 1));
  const where = positionOf(steps, at);
  if (where.group && tx.status !== "COMPLETED" && tx.status !== "COMPENSATING") {
    return (
      <Field label="Step">
        Steps {where.label} of {tx.total_steps} <span class="muted">(a parallel group)</span>
        <div class="sub">
          {where.running} {where.running === 1 ? "branch" : "branches"} running
        </div>
      </Field>
    );
  }
  return (
    <Field label="Step">
      {tx.status === "COMPLETED" ? tx.total_steps : Math.min(tx.current_step + 1, tx.total_steps)} of {tx.total_steps}
      {tx.status !== "COMPLETED" && name(at) ? <span class="muted"> ({name(at)})</span> : null}
      {tx.status === "COMPENSATING" ? <div class="sub">undoing</div> : null}
    </Field>
  );
}

/** A history line: what, who (an operator and why, or recovery and on which host), and the change. */
function HistoryLine({ h, now }: { h: HistoryEntry; now: number }) {
  const who = actorOf(h);
  return (
    <li class={`history-line${who ? ` by-${who.type}` : ""}`}>
      <time dateTime={h.at} title={formatTime(h.at, true)}>
        {formatClock(h.at, now)}
      </time>
      <span class={`tag tag-history-${h.kind}`}>{historyKindLabel(h.kind)}</span>
      <span>
        {who ? (
          <span class={`actor actor-${who.type}`} title={who.host ? `host ${who.host}` : undefined}>
            {who.type === "operator" ? "by operator" : who.type === "recovery" ? (who.host ? `by recovery on ${who.host}` : "by recovery") : `by ${who.label}`}
            {who.reason ? (
              <>
                : <q class="reason">{who.reason}</q>
              </>
            ) : null}
          </span>
        ) : null}
        {who ? " · " : null}
        <span class="history-message">{h.message}</span>
      </span>
    </li>
  );
}

/** Every attempt of every step, oldest first, as stored with the saga. */
function AttemptsTable({ attempts, now }: { attempts: AttemptView[]; now: number }) {
  if (!attempts.length) return <p class="muted">No attempts recorded.</p>;
  return (
    <div class="table-wrap attempts-wrap">
      <table class="attempts">
        <thead>
          <tr>
            <th scope="col">Step</th>
            <th scope="col">Phase</th>
            <th scope="col" class="num">
              #
            </th>
            <th scope="col">Outcome</th>
            <th scope="col">Started</th>
            <th scope="col">Host and plugin</th>
          </tr>
        </thead>
        <tbody>
          {attempts.map((a, i) => {
            const f = a.outcome === "failed" ? failureOf(a.message, a.failure_kind) : null;
            return (
              <tr key={i} data-step={a.step_index} class={`attempt outcome-${a.outcome}`}>
                <td class="nowrap">
                  {a.step_index + 1}. {a.step_name}
                </td>
                <td>{a.phase}</td>
                <td class="num">{a.attempt}</td>
                <td class="outcome-cell">
                  <span class="dot" style={{ background: TONE_COLOURS[attemptTone(a)] }} aria-hidden="true" /> {a.outcome.replace(/_/g, " ")}
                  {f?.kind ? (
                    <>
                      {" "}
                      <span class={`tag tag-${f.kind}`}>{kindLabel(f.kind)}</span>
                    </>
                  ) : null}
                  {f?.message ? (
                    <span class="err-text">
                      {" "}
                      <Breakable text={f.message} />
                    </span>
                  ) : null}
                </td>
                <td class="nowrap" title={formatTime(a.started_at, true)}>
                  {formatClock(a.started_at, now)}
                  <div class="sub">took {formatDuration(a.duration_ms)}</div>
                </td>
                <td class="nowrap">
                  <span class="mono" title={a.host}>
                    {shortHostId(a.host)}
                  </span>
                  <div class="sub mono" title={a.plugin_digest ?? undefined}>
                    {a.plugin_digest ? shortDigest(a.plugin_digest) : "—"}
                  </div>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function StepsTable({ steps, now, current, onAnswer }: { steps: StepView[]; now: number; current: number; onAnswer: (w: WaitView) => void }) {
  const [open, setOpen] = useState<Set<number>>(new Set());
  const setAnswering = (w: WaitView | null) => w && onAnswer(w);
  if (!steps.length) return <p class="muted">No steps.</p>;
  const toggle = (i: number) =>
    setOpen((o) => {
      const next = new Set(o);
      if (!next.delete(i)) next.add(i);
      return next;
    });
  return (
    <div class="table-wrap">
      <table class="steps">
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">Step</th>
            <th scope="col">Status</th>
            <th scope="col" class="num wide-only">
              Attempts
            </th>
            <th scope="col" class="wide-only">
              Started
            </th>
            <th scope="col">Error</th>
            <th scope="col">Details</th>
          </tr>
        </thead>
        <tbody>
          {steps.map((s) => {
            const err = failureOf(s.error, s.failure_kind);
            const shown = open.has(s.step_index);
            return (
              <Fragment key={s.step_index}>
                <tr class={s.step_index === current ? "current" : ""}>
                  <td class="num">{s.step_index + 1}</td>
                  <td>
                    <strong>{s.step_name}</strong>
                    {s.group ? (
                      <div class="sub" title={`Runs at once with the other steps of its group (at most ${s.group.max_concurrent} at a time)`}>
                        ∥ parallel, steps {positionOf(steps, s.step_index).label}
                        {s.completed_order != null ? ` · completed ${ordinal(s.completed_order)}` : ""}
                      </div>
                    ) : null}
                    <div class="sub narrow-only">
                      {s.attempts} {s.attempts === 1 ? "attempt" : "attempts"}
                      {s.compensation_attempts ? `, ${s.compensation_attempts} undo` : ""}
                      {s.started_at ? ` · ${formatClock(s.started_at, now)}, took ${formatDuration(between(s.started_at, s.finished_at, now))}` : ""}
                    </div>
                  </td>
                  <td>
                    <StatusBadge status={s.status} />
                    {s.wait ? (
                      <div class="sub wait-info">
                        waits for <Breakable text={s.wait.correlation_id} /> until {formatClock(s.wait.deadline_at, now)}
                        <div>
                          <button type="button" class="btn btn-small" onClick={() => setAnswering(s.wait ?? null)}>
                            Answer…
                          </button>
                        </div>
                      </div>
                    ) : null}
                  </td>
                  <td class="num nowrap wide-only" title={`${s.attempts} execute, ${s.compensation_attempts} compensate`}>
                    {s.attempts}
                    {s.compensation_attempts ? <div class="sub">{s.compensation_attempts} undo</div> : null}
                  </td>
                  <td class="nowrap wide-only" title={formatTime(s.started_at, true)}>
                    {s.started_at ? formatClock(s.started_at, now) : <span class="muted">—</span>}
                    {s.started_at ? <div class="sub">took {formatDuration(between(s.started_at, s.finished_at, now))}</div> : null}
                  </td>
                  <td class="err-cell wide">
                    {err ? (
                      <>
                        {err.kind ? <span class={`tag tag-${err.kind}`}>{kindLabel(err.kind)}</span> : null} <Breakable text={err.message} />
                      </>
                    ) : (
                      <span class="muted">—</span>
                    )}
                  </td>
                  <td>
                    <button
                      type="button"
                      class="btn btn-small step-toggle"
                      aria-expanded={shown}
                      aria-controls={`step-details-${s.step_index}`}
                      aria-label={`${shown ? "Hide" : "Show"} details of step ${s.step_index + 1}`}
                      onClick={() => toggle(s.step_index)}
                    >
                      {shown ? "Hide" : "Show"}
                    </button>
                  </td>
                </tr>
                {shown ? (
                  <tr class="step-details" id={`step-details-${s.step_index}`}>
                    <td colSpan={7}>
                      <dl class="fields fields-compact">
                        <Field label="Idempotency key">{s.idempotency_key ? <code>{s.idempotency_key}</code> : <span class="muted">none</span>}</Field>
                        <Field label="Plugin digest">{s.plugin_digest ? <code title={s.plugin_digest}>{s.plugin_digest.slice(0, 16)}…</code> : <span class="muted">—</span>}</Field>
                        <Field label="Finished">{formatTime(s.finished_at, true)}</Field>
                      </dl>
                      <JsonBlock label={`Output of step ${s.step_index + 1}`} value={s.output} />
                    </td>
                  </tr>
                ) : null}
              </Fragment>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

const ACTIONS: Record<Action, { title: string; label: string; danger: boolean; reasonRequired: boolean; text: string }> = {
  "force-complete": {
    title: "Force-complete this saga?",
    label: "Force complete",
    danger: true,
    reasonRequired: true,
    text: "Marks the saga COMPLETED without running or compensating any more steps. Use it when the work was finished by hand.",
  },
  "force-cancel": {
    title: "Force-cancel this saga?",
    label: "Force cancel",
    danger: true,
    reasonRequired: true,
    text: "Stops the saga and compensates the steps that completed, in reverse order.",
  },
  retry: {
    title: "Retry this saga?",
    label: "Retry",
    danger: false,
    reasonRequired: false,
    text: "A failed or timed-out saga runs again from where it stopped, or from the step you choose; a saga whose compensation failed resumes its compensation.",
  },
};

function ActionDialog(p: { action: Action; tx: TxView; steps: StepView[]; onClose: () => void; onDone: (tx: TxView | null, label: string) => void }) {
  const a = ACTIONS[p.action];
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [fromStep, setFromStep] = useState("");
  const starts = retryStartSteps(p.tx.status, p.steps);
  return (
    <ConfirmDialog
      title={a.title}
      confirmLabel={a.label}
      danger={a.danger}
      reasonRequired={a.reasonRequired}
      busy={busy}
      error={error}
      description={
        <>
          <p>{a.text}</p>
          <p class="muted">
            <code>{p.tx.tx_id}</code> · {p.tx.tx_type} · <StatusBadge status={p.tx.status} />
          </p>
        </>
      }
      extra={
        p.action === "retry" && starts.length ? (
          <>
            <label class="label" for="from-step">
              From step
            </label>
            <select id="from-step" value={fromStep} onChange={(e) => setFromStep((e.target as HTMLSelectElement).value)}>
              <option value="">Where it stopped</option>
              {starts.map((s) => (
                <option key={s.step_index} value={s.step_index}>
                  {s.step_index + 1}. {s.step_name} ({s.status.toLowerCase()})
                </option>
              ))}
            </select>
          </>
        ) : null
      }
      onClose={p.onClose}
      onConfirm={async (reason) => {
        setBusy(true);
        setError(null);
        const body: Record<string, unknown> = {};
        if (reason) body.reason = reason;
        if (p.action === "retry" && fromStep !== "") body.from_step = Number(fromStep);
        try {
          const tx = await api<TxView>(`/api/transactions/${encodeURIComponent(p.tx.tx_id)}/${p.action}`, { method: "POST", json: body });
          p.onDone(tx, a.label);
        } catch (e) {
          const err = e as ApiError;
          setError(err.status === 409 ? `Not allowed now: ${err.message}` : err.message);
          setBusy(false);
        }
      }}
    />
  );
}

/** Give a waiting step its reply by hand: a JSON payload or an error, with a reason. */
function AnswerDialog(p: { wait: WaitView; onClose: () => void; onDone: () => void }) {
  const [kind, setKind] = useState<ReplyKind>("payload");
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  return (
    <ConfirmDialog
      title="Answer this waiting step?"
      confirmLabel="Send answer"
      danger={kind === "error"}
      reasonRequired
      busy={busy}
      error={error}
      description={
        <>
          <p>The step resumes with this answer as if the remote service had sent it. A wait takes one answer: one that comes later is ignored.</p>
          <p class="muted">
            Waits for <code>{p.wait.correlation_id}</code> until {formatTime(p.wait.deadline_at, true)}
          </p>
        </>
      }
      extra={
        <>
          <fieldset class="answer-kind">
            <legend class="label">Answer with</legend>
            <label>
              <input type="radio" name="answer-kind" checked={kind === "payload"} onChange={() => setKind("payload")} /> a payload (JSON)
            </label>
            <label>
              <input type="radio" name="answer-kind" checked={kind === "error"} onChange={() => setKind("error")} /> an error
            </label>
          </fieldset>
          <label class="label" for="answer-text">
            {kind === "payload" ? "Payload (JSON)" : "Error"}
          </label>
          <textarea id="answer-text" rows={3} value={text} onInput={(e) => setText((e.target as HTMLTextAreaElement).value)} />
        </>
      }
      onClose={p.onClose}
      onConfirm={async (reason) => {
        const built = replyBody(kind, text, reason);
        if ("error" in built) {
          setError(built.error);
          return;
        }
        setBusy(true);
        setError(null);
        try {
          await api(replyPath(p.wait.correlation_id), { method: "POST", json: built.body });
          p.onDone();
        } catch (e) {
          const err = e as ApiError;
          setError(err.status === 409 ? `Already answered: ${err.message}` : err.message);
          setBusy(false);
        }
      }}
    />
  );
}
