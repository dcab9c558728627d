// The hosts sharing one database: who serves which plugin versions.

import type { HostPlugins } from "../types";

/** The first 12 hex digits of a digest: enough to tell versions apart at a glance. */
export function shortDigest(digest: string): string {
  return digest.slice(0, 12);
}

/** One version of a plugin file and the hosts serving it (`digest` null: not loaded there). */
export interface PluginVersion {
  digest: string | null;
  hosts: { host_id: string; this_host: boolean }[];
}

/** A plugin file whose version is not the same on every host. */
export interface PluginDifference {
  file: string;
  versions: PluginVersion[];
}

/**
 * The plugin files that differ between hosts, by name, each with its versions in the order
 * hosts are listed (this host first) and a version for hosts that do not load the file.
 */
export function pluginDifferences(hosts: HostPlugins[]): PluginDifference[] {
  const files = [...new Set(hosts.flatMap((h) => Object.keys(h.plugins)))].sort();
  const out: PluginDifference[] = [];
  for (const file of files) {
    const versions: PluginVersion[] = [];
    for (const h of hosts) {
      const digest = h.plugins[file] ?? null;
      let v = versions.find((x) => x.digest === digest);
      if (!v) versions.push((v = { digest, hosts: [] }));
      v.hosts.push({ host_id: h.host_id, this_host: h.this_host });
    }
    if (versions.length > 1) out.push({ file, versions });
  }
  return out;
}

/** "1 host", "3 hosts". */
export function hostCount(n: number): string {
  return `${n} host${n === 1 ? "" : "s"}`;
}

/**
 * A host id short enough for a table header: `host-` ids (a UUIDv7, whose start is a timestamp
 * alike for hosts started together) keep their prefix and the random last 8 digits.
 */
export function shortHostId(id: string): string {
  const m = /^(host-)[0-9a-f]{24,}$/i.exec(id);
  return m ? `${m[1]}…${id.slice(-8)}` : id.length > 20 ? `${id.slice(0, 8)}…${id.slice(-8)}` : id;
}
