// Start a saga: a defined type (or an ad-hoc list of steps) with a JSON input.

import { useEffect, useMemo, useState } from "preact/hooks";
import { api, ApiError } from "../api";
import { ErrorState, Loading, PageHeader, StatusBadge } from "../components/ui";
import { useApi } from "../hooks";
import { Link } from "../router";
import { inputSkeleton, startOutcome } from "../lib/start";
import { stepsLine } from "../lib/groups";
import type { PluginStatus, SagaDef, TxView } from "../types";

const AD_HOC = "";

function parseInput(text: string): { value?: unknown; error?: string } {
  if (!text.trim()) return { value: {} };
  try {
    return { value: JSON.parse(text) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

export function StartSaga({ search }: { search: string }) {
  const sagas = useApi<{ sagas: Record<string, SagaDef> }>("/api/sagas");
  const plugins = useApi<{ plugins: PluginStatus[] }>("/api/plugins");
  const defs = sagas.data?.sagas ?? {};
  const names = Object.keys(defs).sort();
  // `null` until a type is chosen: nothing is preselected (the first type alphabetically may
  // be a destructive one), except a type named by `?type=`.
  const [type, setType] = useState<string | null>(null);
  const [input, setInput] = useState("{}");
  const [steps, setSteps] = useState("");
  const [adHocType, setAdHocType] = useState("");
  const [timeout, setTimeoutText] = useState("");
  const [maxRetries, setMaxRetries] = useState("");
  const [idemKey, setIdemKey] = useState("");
  const [wait, setWait] = useState(true);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [result, setResult] = useState<TxView | null>(null);

  // Pick the type named by ?type=…, once the definitions arrive; otherwise none.
  useEffect(() => {
    if (type !== null || (!sagas.data && !sagas.error)) return;
    const wanted = new URLSearchParams(search).get("type");
    if (wanted && defs[wanted]) {
      setType(wanted);
      setInput(inputSkeleton(defs[wanted]));
    } else if (sagas.data && names.length === 0) {
      setType(AD_HOC);
    }
  }, [sagas.data, sagas.error]);

  const stepNames = useMemo(() => (plugins.data?.plugins ?? []).flatMap((p) => p.steps.map((s) => s.name)).sort(), [plugins.data]);
  const parsed = parseInput(input);
  const def = type ? defs[type] : undefined;
  const stepList = steps.split(/[\s,]+/).filter(Boolean);
  const unknownSteps = stepNames.length ? stepList.filter((s) => !stepNames.includes(s)) : [];
  const canSubmit = !busy && !parsed.error && type !== null && (type ? true : stepList.length > 0);

  const choose = (t: string) => {
    setType(t);
    setInput(inputSkeleton(defs[t]));
    setResult(null);
    setError(null);
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!canSubmit) return;
    const body: Record<string, unknown> = { input: parsed.value };
    if (type) body.tx_type = type;
    else {
      body.steps = stepList;
      if (adHocType.trim()) body.tx_type = adHocType.trim();
    }
    if (timeout.trim()) body.timeout = timeout.trim();
    if (maxRetries.trim()) body.max_retries = Number(maxRetries);
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      const headers: Record<string, string> = idemKey.trim() ? { "Idempotency-Key": idemKey.trim() } : {};
      const tx = await api<TxView>(`/api/transactions${wait ? "?wait=10s" : ""}`, { method: "POST", json: body, headers });
      setResult(tx);
    } catch (err) {
      setError((err as ApiError).message);
    } finally {
      setBusy(false);
    }
  };

  if (!sagas.data && !sagas.error) return <Loading />;
  return (
    <>
      <PageHeader title="Start saga" />
      <form class="start" onSubmit={submit}>
        <section class="panel" aria-labelledby="type-title">
          <h2 id="type-title">Saga type</h2>
          {sagas.error ? <ErrorState error={sagas.error} what="saga definitions" onRetry={sagas.reload} /> : null}
          <div class="type-list" role="radiogroup" aria-label="Saga type">
            {names.map((n) => (
              <label key={n} class={`type-option ${type === n ? "selected" : ""}`}>
                <input type="radio" name="saga-type" value={n} checked={type === n} onChange={() => choose(n)} />
                <span>
                  <strong>{n}</strong>
                  <span class="sub">{defs[n].description || stepsLine(defs[n].steps)}</span>
                </span>
              </label>
            ))}
            <label class={`type-option ${type === AD_HOC ? "selected" : ""}`}>
              <input type="radio" name="saga-type" value="" checked={type === AD_HOC} onChange={() => choose(AD_HOC)} />
              <span>
                <strong>Ad hoc</strong>
                <span class="sub">Name the steps yourself</span>
              </span>
            </label>
          </div>
        </section>
        <section class="panel" aria-labelledby="def-title">
          <h2 id="def-title">{type === null ? "Choose a saga type" : type ? type : "Ad-hoc saga"}</h2>
          {type === null ? (
            <p class="hint">Pick a saga type, or Ad hoc to name the steps yourself.</p>
          ) : def ? (
            <dl class="fields">
              <div class="field field-wide">
                <dt>Steps</dt>
                <dd>
                  {def.steps.map((s, i) => (
                    <span key={i}>
                      {i ? <span class="arrow"> → </span> : null}
                      <code class="tag">{s}</code>
                    </span>
                  ))}
                </dd>
              </div>
              <div class="field field-wide">
                <dt>Lock keys</dt>
                <dd>{def.lock_keys.length ? def.lock_keys.map((k) => <code key={k} class="tag">{k}</code>) : <span class="muted">none</span>}</dd>
              </div>
              <div class="field">
                <dt>Timeout</dt>
                <dd>{def.timeout ?? <span class="muted">host default</span>}</dd>
              </div>
              <div class="field">
                <dt>Max retries</dt>
                <dd>{def.max_retries ?? <span class="muted">host default</span>}</dd>
              </div>
            </dl>
          ) : (
            <div class="form-grid">
              <label class="label" for="steps">
                Steps, in order
              </label>
              <input id="steps" list="step-names" value={steps} placeholder="test_ok, test_ok, test_fail" spellcheck={false} onInput={(e) => setSteps((e.target as HTMLInputElement).value)} />
              <datalist id="step-names">
                {stepNames.map((s) => (
                  <option key={s} value={s} />
                ))}
              </datalist>
              {stepNames.length ? <p class="hint">Loaded steps: {stepNames.join(", ")}</p> : null}
              {unknownSteps.length ? <p class="form-error">Not loaded: {unknownSteps.join(", ")}</p> : null}
              <label class="label" for="adhoc-type">
                Type name (optional)
              </label>
              <input id="adhoc-type" value={adHocType} onInput={(e) => setAdHocType((e.target as HTMLInputElement).value)} />
            </div>
          )}
          <label class="label" for="input-json">
            Input (JSON)
          </label>
          <textarea
            id="input-json"
            class={`code ${parsed.error ? "invalid" : ""}`}
            rows={10}
            spellcheck={false}
            value={input}
            aria-invalid={!!parsed.error}
            aria-describedby="input-help"
            onInput={(e) => setInput((e.target as HTMLTextAreaElement).value)}
          />
          <p id="input-help" class={parsed.error ? "form-error" : "hint"}>
            {parsed.error ? `Invalid JSON: ${parsed.error}` : "Passed to every step; lock-key templates take their fields from it."}
          </p>
          <details class="advanced">
            <summary>Options</summary>
            <div class="options">
              <label class="field-inline">
                <span>Timeout</span>
                <input value={timeout} placeholder="e.g. 30s" onInput={(e) => setTimeoutText((e.target as HTMLInputElement).value)} />
              </label>
              <label class="field-inline">
                <span>Max retries</span>
                <input type="number" min={0} value={maxRetries} onInput={(e) => setMaxRetries((e.target as HTMLInputElement).value)} />
              </label>
              <label class="field-inline grow">
                <span>Idempotency key</span>
                <input value={idemKey} onInput={(e) => setIdemKey((e.target as HTMLInputElement).value)} />
              </label>
            </div>
          </details>
          <div class="form-actions">
            <label class="check">
              <input type="checkbox" checked={wait} onChange={(e) => setWait((e.target as HTMLInputElement).checked)} /> Wait up to 10 s for the outcome
            </label>
            <button type="submit" class="btn btn-primary" disabled={!canSubmit}>
              {busy ? "Starting…" : "Start saga"}
            </button>
          </div>
          {error ? (
            <div class="banner banner-bad" role="alert">
              {error}
            </div>
          ) : null}
          {result ? (
            <div class={`banner banner-${startOutcome(result.status).tone} result`} role={startOutcome(result.status).tone === "bad" ? "alert" : "status"}>
              <span>
                {startOutcome(result.status).text}:{" "}
                <Link href={`/transactions/${encodeURIComponent(result.tx_id)}`} class="mono">
                  {result.tx_id}
                </Link>
              </span>
              <StatusBadge status={result.status} />
              {result.error ? <span class="err-text">{result.error}</span> : null}
              <Link class="btn btn-small" href={`/transactions/${encodeURIComponent(result.tx_id)}`}>
                Open transaction
              </Link>
            </div>
          ) : null}
        </section>
      </form>
    </>
  );
}
