import { describe, expect, it } from "vitest";
import { expand, findAll, hasClass, text } from "../test/vnode";
import type { Breaker, BreakerState, HostBreakers } from "../types";
import { BreakerHostsView } from "./breakers";

const A = "host-0192f3a1b2c34d5e8f60718293a4b5c6";
const B = "host-0192f3a1b2c37d5e9a6071829aabbccd";

const breaker = (service: string, state: BreakerState = "closed", over: Partial<Breaker> = {}): Breaker => ({
  service,
  state,
  consecutive_failures: 0,
  total_failures: 0,
  total_successes: 0,
  ...over,
});
const host = (host_id: string, circuit_breakers: Breaker[], this_host = false): HostBreakers => ({ host_id, this_host, circuit_breakers });

describe("BreakerHostsView", () => {
  const hosts = [
    host(A, [breaker("payments", "closed", { total_successes: 40 }), breaker("shipping")], true),
    host(B, [breaker("payments", "open", { consecutive_failures: 5, total_failures: 9 })]),
  ];

  it("shows each service's state on each host when hosts keep their own breakers", () => {
    const tree = expand(BreakerHostsView({ shared: false, hosts }));
    expect(text(findAll(tree, "h2"))).toBe("Per host");
    expect(text(findAll(tree, hasClass("sub")))).toBe("2 hosts, each with its own breakers");

    // Hosts as columns, this host first and marked; ids shortened, the full id in the title.
    const head = findAll(findAll(tree, "thead"), "th");
    expect(head.map(text)).toEqual(["Service", "host-…93a4b5c6 this host", "host-…9aabbccd"]);
    expect(findAll(head[1], hasClass("mono"))[0].props.title).toBe(A);
    expect(findAll(tree, hasClass("tag-this-host"))).toHaveLength(1);
    expect(findAll(head[1], hasClass("tag-this-host"))).toHaveLength(1);

    const rows = findAll(findAll(tree, "tbody"), "tr");
    expect(rows.map((r) => text(findAll(r, "th")))).toEqual(["payments differs", "shipping"]);
    const cells = rows.map((r) => findAll(r, "td"));
    // Open on the other host while closed here.
    expect(cells[0].map(text)).toEqual(["Closed", "Open"]);
    expect(findAll(cells[0][1], hasClass("badge"))[0].props.class).toContain("tone-bad");
    expect(findAll(cells[0][0], hasClass("badge"))[0].props.class).toContain("tone-ok");
    expect(cells[0][1].props.title).toBe("5 consecutive failures; 9 failed, 0 succeeded in all");
    // No breaker yet on the other host: a dash (as good as closed, so not marked as differing).
    expect(cells[1].map(text)).toEqual(["Closed", "—"]);

    expect(text(findAll(tree, hasClass("breakers-scope")))).toContain("a reset applies only to the host that serves it");
    expect(findAll(tree, hasClass("breakers-scope"))[0].props.class).toContain("muted");
  });

  it("says the breakers are shared when they live in Redis, without a per-host table", () => {
    const tree = expand(BreakerHostsView({ shared: true, hosts }));
    expect(text(tree)).toBe("Shared by every host (Redis).");
    expect(findAll(tree, hasClass("muted"))).toHaveLength(1);
    expect(findAll(tree, "table")).toEqual([]);
  });

  it("shows nothing for a single host keeping its own breakers, or a host older than the cluster views", () => {
    expect(expand(BreakerHostsView({ shared: false, hosts: [hosts[0]] }))).toEqual([]);
    expect(expand(BreakerHostsView({}))).toEqual([]);
    expect(expand(BreakerHostsView({ hosts }))).toEqual([]);
  });

  it("shows the note without a table when no host has a breaker yet", () => {
    const tree = expand(BreakerHostsView({ shared: false, hosts: [host(A, [], true), host(B, [])] }));
    expect(findAll(tree, "table")).toEqual([]);
    expect(findAll(tree, hasClass("breakers-scope"))).toHaveLength(1);
  });
});
