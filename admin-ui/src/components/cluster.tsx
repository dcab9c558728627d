// The hosts sharing one database: each host's recovery worker, and plugin versions that differ.

import { hostCount, pluginDifferences, shortDigest, shortHostId } from "../lib/cluster";
import { formatAgo, formatShortTime, formatTime } from "../lib/format";
import type { HostPlugins, HostRecovery } from "../types";

/** A host id (`short`: shortened, the full id in its title), marked when it is the host answering. */
export function HostName({ id, thisHost, short = false }: { id: string; thisHost: boolean; short?: boolean }) {
  return (
    <>
      {short ? (
        <span class="mono" title={id}>
          {shortHostId(id)}
        </span>
      ) : (
        <span class="mono">{id}</span>
      )}
      {thisHost ? (
        <>
          {" "}
          <span class="tag tag-this-host">this host</span>
        </>
      ) : null}
    </>
  );
}

/** Each live host's recovery worker, this host first. */
export function RecoveryHostsTable({ hosts, now }: { hosts: HostRecovery[]; now: number }) {
  return (
    <section class="panel" aria-labelledby="hosts-title">
      <div class="panel-head">
        <h2 id="hosts-title">Hosts</h2>
        <span class="sub">{hostCount(hosts.length)} on this database</span>
      </div>
      <div class="table-wrap">
        <table class="hosts">
          <thead>
            <tr>
              <th scope="col">Host</th>
              <th scope="col">Worker</th>
              <th scope="col" class="num">
                Scanned
              </th>
              <th scope="col" class="num">
                Processed
              </th>
              <th scope="col" class="num">
                Failed
              </th>
              <th scope="col">Last run</th>
            </tr>
          </thead>
          <tbody>
            {hosts.map((h) => (
              <tr key={h.host_id}>
                <th scope="row">
                  <HostName id={h.host_id} thisHost={h.this_host} />
                </th>
                <td>
                  <span class={`badge tone-${h.running ? "ok" : "bad"}`}>{h.running ? "Running" : "Stopped"}</span>
                </td>
                <td class="num">{h.scanned.toLocaleString()}</td>
                <td class="num">{h.processed.toLocaleString()}</td>
                <td class={`num${h.failed ? " err-text" : ""}`}>{h.failed.toLocaleString()}</td>
                <td>
                  {h.last_run_at ? (
                    <time dateTime={h.last_run_at} title={formatTime(h.last_run_at)}>
                      {formatShortTime(h.last_run_at, now)} <span class="muted">({formatAgo(h.last_run_at, now)})</span>
                    </time>
                  ) : (
                    <span class="muted">not yet</span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

/**
 * Whether every host serves the same plugin versions: a warning naming the files that differ
 * and which hosts serve which version, or a short line when several hosts agree.
 */
export function PluginHostsNotice({ same, hosts }: { same?: boolean; hosts?: HostPlugins[] }) {
  if (same == null || !hosts) return null;
  if (same) return hosts.length > 1 ? <p class="muted cluster-note">Same versions on all {hosts.length} hosts.</p> : null;
  const diffs = pluginDifferences(hosts);
  return (
    <div class="banner banner-warn plugin-mismatch" role="status">
      <strong>Hosts serve different plugin versions.</strong> A saga's steps may run different code depending on which
      host runs them (or recovers them). Deploy the same plugin files to every host.
      {diffs.length ? (
        <ul class="mismatch-list">
          {diffs.map((d) => (
            <li key={d.file}>
              <code>{d.file}</code>:{" "}
              {d.versions.map((v, i) => (
                <span key={v.digest ?? ""}>
                  {i ? "; " : ""}
                  {v.digest ? (
                    <code class="digest-short" title={v.digest}>
                      {shortDigest(v.digest)}
                    </code>
                  ) : (
                    <em>not loaded</em>
                  )}{" "}
                  on{" "}
                  {v.hosts.map((h, j) => (
                    <span key={h.host_id}>
                      {j ? ", " : ""}
                      <HostName id={h.host_id} thisHost={h.this_host} />
                    </span>
                  ))}
                </span>
              ))}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}
