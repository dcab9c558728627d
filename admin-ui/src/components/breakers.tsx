// Circuit breakers across hosts: shared through Redis, or each host's own side by side.

import { breakerCounts, breakersByService, showPerHost } from "../lib/breakers";
import { hostCount } from "../lib/cluster";
import type { HostBreakers } from "../types";
import { HostName } from "./cluster";
import { StatusBadge } from "./ui";

/**
 * Under this host's breakers: a line saying they are shared when they live in Redis; otherwise,
 * with several hosts, each service's state on each host and a note that resets are per host.
 * Nothing for a single host keeping its own, or a host older than the cluster views.
 */
export function BreakerHostsView({ shared, hosts }: { shared?: boolean; hosts?: HostBreakers[] }) {
  if (shared) return <p class="muted breakers-scope">Shared by every host (Redis).</p>;
  if (!showPerHost(shared, hosts)) return null;
  const services = breakersByService(hosts);
  return (
    <section class="panel breakers-per-host" aria-labelledby="breaker-hosts-title">
      <div class="panel-head">
        <h2 id="breaker-hosts-title">Per host</h2>
        <span class="sub">{hostCount(hosts.length)}, each with its own breakers</span>
      </div>
      {services.length ? (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Service</th>
                {hosts.map((h) => (
                  <th scope="col" key={h.host_id}>
                    <HostName id={h.host_id} thisHost={h.this_host} short />
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {services.map((s) => (
                <tr key={s.service} class={s.differs ? "breaker-differs" : undefined}>
                  <th scope="row">
                    {s.service}
                    {s.differs ? (
                      <>
                        {" "}
                        <span class="tag tag-differs" title="Not the same state on every host">
                          differs
                        </span>
                      </>
                    ) : null}
                  </th>
                  {s.breakers.map((b, i) => (
                    <td key={hosts[i].host_id} title={b ? breakerCounts(b) : "No calls to this service on this host yet"}>
                      {b ? <StatusBadge status={b.state} /> : <span class="muted">—</span>}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <p class="muted breakers-scope">
        Without Redis each host keeps its own breakers: one opens only on the host whose calls fail, the table above is
        this host's, and a reset applies only to the host that serves it.
      </p>
    </section>
  );
}
