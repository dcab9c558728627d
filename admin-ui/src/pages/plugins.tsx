// Loaded plugins: steps, digests, limits, load errors; whether every host serves the same versions.

import { PluginHostsNotice } from "../components/cluster";
import { CopyButton, Empty, ErrorState, Loading, PageHeader } from "../components/ui";
import { useApi } from "../hooks";
import { formatBytes, formatTime } from "../lib/format";
import type { PluginList } from "../types";

export function Plugins() {
  const list = useApi<PluginList>("/api/plugins", 10000);
  const plugins = list.data?.plugins ?? [];
  const failed = plugins.filter((p) => p.error).length;
  return (
    <>
      <PageHeader title="Plugins">
        <button type="button" class="btn" onClick={list.reload} disabled={list.loading}>
          Refresh
        </button>
      </PageHeader>
      <p class="lead muted">
        WebAssembly components in this host's plugins directory. A changed file is reloaded without a restart; if the new
        version does not load, the previous one keeps serving and its error is shown here.
      </p>
      {list.error ? (
        <ErrorState error={list.error} what="plugins" onRetry={list.reload} />
      ) : !list.data ? (
        <Loading />
      ) : (
        <>
          <PluginHostsNotice same={list.data.same_on_every_host} hosts={list.data.hosts} />
          {plugins.length === 0 ? (
            <Empty title="No plugins loaded">Drop .wasm files into the host's plugins directory.</Empty>
          ) : null}
          {failed ? (
            <div class="banner banner-bad" role="status">
              {failed} plugin file{failed === 1 ? "" : "s"} failed to load.
            </div>
          ) : null}
          {plugins.map((p) => (
            <section class="panel plugin" key={p.file} aria-labelledby={`plugin-${p.file}`}>
              <div class="panel-head">
                <h2 id={`plugin-${p.file}`} class="mono">
                  {p.file}
                </h2>
                {p.error ? <span class="badge tone-bad">Load error</span> : <span class="badge tone-ok">Loaded</span>}
              </div>
              {p.error ? (
                <pre class="error-box" role="note">
                  {p.error}
                </pre>
              ) : null}
              <dl class="fields">
                <div class="field field-full">
                  <dt>Digest (SHA-256)</dt>
                  <dd>
                    {p.digest ? (
                      <>
                        <code class="digest">{p.digest}</code> <CopyButton text={p.digest} label={`Copy digest of ${p.file}`} />
                      </>
                    ) : (
                      <span class="muted">not serving</span>
                    )}
                  </dd>
                </div>
                <div class="field">
                  <dt>Loaded</dt>
                  <dd>{formatTime(p.loaded_at)}</dd>
                </div>
                <div class="field">
                  <dt>Memory limit</dt>
                  <dd>{formatBytes(p.limits?.memory_bytes)}</dd>
                </div>
                <div class="field">
                  <dt>Call timeout</dt>
                  <dd>{p.limits?.timeout ?? "—"}</dd>
                </div>
                <div class="field">
                  <dt>Max output</dt>
                  <dd>{formatBytes(p.limits?.max_output_bytes)}</dd>
                </div>
              </dl>
              {p.steps.length ? (
                <div class="table-wrap">
                  <table>
                    <thead>
                      <tr>
                        <th scope="col">Step</th>
                        <th scope="col">Version</th>
                        <th scope="col">Service</th>
                        <th scope="col">Compensation</th>
                        <th scope="col">Idempotency</th>
                        <th scope="col">Description</th>
                      </tr>
                    </thead>
                    <tbody>
                      {p.steps.map((s) => (
                        <tr key={s.name}>
                          <th scope="row" class="mono">
                            {s.name}
                          </th>
                          <td>{s.version}</td>
                          <td>{s.service}</td>
                          <td>{s.supports_compensation ? "yes" : <span class="muted">no</span>}</td>
                          <td>{s.supports_idempotency ? "yes" : <span class="muted">no</span>}</td>
                          <td>{s.description}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              ) : null}
            </section>
          ))}
        </>
      )}
    </>
  );
}
