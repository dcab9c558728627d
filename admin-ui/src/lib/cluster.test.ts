import { expect, it } from "vitest";
import type { HostPlugins } from "../types";
import { hostCount, pluginDifferences, shortDigest, shortHostId } from "./cluster";

const A = "a".repeat(64);
const B = "b".repeat(64);
const C = "c".repeat(64);

const host = (host_id: string, plugins: Record<string, string>, this_host = false): HostPlugins => ({ host_id, this_host, plugins });

it("finds no differences when every host serves the same versions", () => {
  expect(pluginDifferences([])).toEqual([]);
  expect(pluginDifferences([host("h1", { "bank.wasm": A }, true)])).toEqual([]);
  expect(pluginDifferences([host("h1", { "bank.wasm": A }, true), host("h2", { "bank.wasm": A })])).toEqual([]);
});

it("groups the hosts of each differing file by version, this host first", () => {
  const diffs = pluginDifferences([
    host("h1", { "bank.wasm": A, "testkit.wasm": C }, true),
    host("h2", { "bank.wasm": B, "testkit.wasm": C }),
    host("h3", { "bank.wasm": A, "testkit.wasm": C }),
  ]);
  expect(diffs).toEqual([
    {
      file: "bank.wasm",
      versions: [
        { digest: A, hosts: [{ host_id: "h1", this_host: true }, { host_id: "h3", this_host: false }] },
        { digest: B, hosts: [{ host_id: "h2", this_host: false }] },
      ],
    },
  ]);
});

it("counts a file missing on a host as a version of its own, files in name order", () => {
  const diffs = pluginDifferences([host("h1", { "z.wasm": A, "a.wasm": A }, true), host("h2", { "a.wasm": B })]);
  expect(diffs.map((d) => d.file)).toEqual(["a.wasm", "z.wasm"]);
  expect(diffs[1].versions).toEqual([
    { digest: A, hosts: [{ host_id: "h1", this_host: true }] },
    { digest: null, hosts: [{ host_id: "h2", this_host: false }] },
  ]);
});

it("shortens digests and counts hosts", () => {
  expect(shortDigest("0123456789abcdef0123")).toBe("0123456789ab");
  expect(hostCount(1)).toBe("1 host");
  expect(hostCount(3)).toBe("3 hosts");
});

it("shortens host ids to their prefix and random end", () => {
  expect(shortHostId("host-0192f3a1b2c34d5e8f60718293a4b5c6")).toBe("host-…93a4b5c6");
  expect(shortHostId("host-a")).toBe("host-a");
  expect(shortHostId("a-very-long-custom-host-name-01")).toBe("a-very-l…-name-01");
});
