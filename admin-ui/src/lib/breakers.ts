// Circuit breakers across hosts: each host keeps its own unless they live in Redis.

import type { Breaker, HostBreakers } from "../types";

/** Whether to show each host's breakers: only when hosts keep their own and there are several. */
export function showPerHost(shared: boolean | undefined, hosts: HostBreakers[] | undefined): hosts is HostBreakers[] {
  return shared === false && (hosts?.length ?? 0) > 1;
}

/** One service's breaker on each host, in the order hosts are given (null: none there yet). */
export interface ServiceAcrossHosts {
  service: string;
  breakers: (Breaker | null)[];
  /** Whether its state is not the same on every host (no breaker counts as closed). */
  differs: boolean;
}

/** Every service any host has a breaker for, by name, with its breaker on each host. */
export function breakersByService(hosts: HostBreakers[]): ServiceAcrossHosts[] {
  const services = [...new Set(hosts.flatMap((h) => h.circuit_breakers.map((b) => b.service)))].sort((a, b) => a.localeCompare(b));
  return services.map((service) => {
    const breakers = hosts.map((h) => h.circuit_breakers.find((b) => b.service === service) ?? null);
    const states = new Set(breakers.map((b) => b?.state ?? "closed"));
    return { service, breakers, differs: states.size > 1 };
  });
}

/** A breaker's counts, for a tooltip. */
export function breakerCounts(b: Breaker): string {
  return `${b.consecutive_failures} consecutive failures; ${b.total_failures} failed, ${b.total_successes} succeeded in all`;
}
