import { describe, expect, it } from "vitest";
import { expand, findAll, hasClass, text } from "../test/vnode";
import type { HostPlugins, HostRecovery } from "../types";
import { PluginHostsNotice, RecoveryHostsTable } from "./cluster";

const NOW = Date.parse("2026-11-27T12:00:00Z");

function worker(host_id: string, this_host: boolean, over: Partial<HostRecovery> = {}): HostRecovery {
  return {
    host_id,
    this_host,
    running: true,
    interval_ms: 30_000,
    stuck_threshold_ms: 60_000,
    scanned: 0,
    processed: 0,
    failed: 0,
    last_run_at: null,
    last_run_duration_ms: 0,
    ...over,
  };
}

describe("RecoveryHostsTable", () => {
  const tree = expand(
    RecoveryHostsTable({
      now: NOW,
      hosts: [
        worker("host-a", true, { scanned: 12, processed: 10, failed: 2, last_run_at: "2026-11-27T11:59:30Z" }),
        worker("host-b", false, { running: false, scanned: 1500 }),
      ],
    }),
  );
  const rows = findAll(findAll(tree, "tbody"), "tr");

  it("has a Hosts heading and one row per host, in the order given", () => {
    expect(text(findAll(tree, "h2"))).toBe("Hosts");
    expect(findAll(findAll(tree, "thead"), "th").map(text)).toEqual(["Host", "Worker", "Scanned", "Processed", "Failed", "Last run"]);
    expect(rows).toHaveLength(2);
    expect(rows.map((r) => text(findAll(r, hasClass("mono"))))).toEqual(["host-a", "host-b"]);
  });

  it("marks this host, and only it", () => {
    expect(findAll(rows[0], hasClass("tag-this-host")).map(text)).toEqual(["this host"]);
    expect(findAll(rows[1], hasClass("tag-this-host"))).toEqual([]);
    expect(findAll(tree, hasClass("tag-this-host"))).toHaveLength(1);
  });

  it("shows each worker's state, counts and last run", () => {
    const cells = rows.map((r) => findAll(r, "td").map(text));
    expect(cells[0]).toEqual(["Running", "12", "10", "2", expect.stringMatching(/\(30 s ago\)$/)]);
    expect(cells[1]).toEqual(["Stopped", (1500).toLocaleString(), "0", "0", "not yet"]);
    expect(findAll(rows[1], hasClass("badge"))[0].props.class).toContain("tone-bad");
    expect(findAll(rows[0], "time")[0].props.dateTime).toBe("2026-11-27T11:59:30Z");
  });
});

describe("PluginHostsNotice", () => {
  const A = "a1b2c3d4e5f6".padEnd(64, "0");
  const B = "ffeeddccbbaa".padEnd(64, "9");
  const T = "7".repeat(64);
  const host = (host_id: string, plugins: Record<string, string>, this_host = false): HostPlugins => ({ host_id, this_host, plugins });
  const banners = (tree: ReturnType<typeof expand>) => findAll(tree, hasClass("banner"));

  it("warns when hosts differ, naming the differing file and who serves which digest", () => {
    const tree = expand(
      PluginHostsNotice({
        same: false,
        hosts: [
          host("host-a", { "bank.wasm": A, "testkit.wasm": T }, true),
          host("host-b", { "bank.wasm": B, "testkit.wasm": T }),
          host("host-c", { "testkit.wasm": T }),
        ],
      }),
    );
    expect(banners(tree)).toHaveLength(1);
    expect(banners(tree)[0].props.class).toContain("banner-warn");
    const items = findAll(tree, "li");
    expect(items.map(text)).toEqual([
      "bank.wasm: a1b2c3d4e5f6 on host-a this host; ffeeddccbbaa on host-b; not loaded on host-c",
    ]);
    // The file that agrees is not named; digests are shortened, the full one is in the title.
    expect(text(tree)).not.toContain("testkit.wasm");
    expect(text(tree)).not.toContain(A);
    expect(findAll(tree, hasClass("digest-short"))[0].props.title).toBe(A);
  });

  it("shows no warning when the hosts agree: a short line for several hosts, nothing for one", () => {
    const two = expand(PluginHostsNotice({ same: true, hosts: [host("host-a", { "bank.wasm": A }, true), host("host-b", { "bank.wasm": A })] }));
    expect(banners(two)).toEqual([]);
    expect(text(two)).toBe("Same versions on all 2 hosts.");
    expect(findAll(two, hasClass("muted"))).toHaveLength(1);

    expect(expand(PluginHostsNotice({ same: true, hosts: [host("host-a", { "bank.wasm": A }, true)] }))).toEqual([]);
  });

  it("shows nothing for a host older than the cluster views", () => {
    expect(expand(PluginHostsNotice({}))).toEqual([]);
  });
});
