// Data hooks: fetch with loading/error state, refetch on token change, optional polling.

import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, auth } from "./api";

export interface Resource<T> {
  data: T | null;
  error: ApiError | null;
  loading: boolean;
  reload: () => void;
}

/**
 * GET `path` (null: nothing to fetch); reloads when `path` or the token changes, and every
 * `pollMs`. With `keep`, a new path shows the previous data until its own arrives (lists
 * that page or filter without flicker).
 */
export function useApi<T>(path: string | null, pollMs = 0, keep = false): Resource<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(path != null);
  const [tick, setTick] = useState(0);
  const authVersion = useAuthVersion();
  const seq = useRef(0);

  useEffect(() => {
    if (path == null) return;
    const mine = ++seq.current;
    setLoading(true);
    api<T>(path)
      .then((d) => {
        if (mine !== seq.current) return;
        setData(d);
        setError(null);
      })
      .catch((e: ApiError) => {
        if (mine === seq.current) setError(e);
      })
      .finally(() => {
        if (mine === seq.current) setLoading(false);
      });
  }, [path, tick, authVersion]);

  useEffect(() => {
    if (!pollMs || path == null) return;
    const id = setInterval(() => {
      if (document.visibilityState === "visible") setTick((t) => t + 1);
    }, pollMs);
    return () => clearInterval(id);
  }, [pollMs, path]);

  // Otherwise a new path starts from a clean slate rather than showing the previous one's data.
  useEffect(() => {
    if (keep) return;
    setData(null);
    setError(null);
  }, [path, keep]);

  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, reload };
}

export function useAuthVersion(): number {
  const [v, setV] = useState(auth.version);
  useEffect(() => auth.subscribe(() => setV(auth.version)), []);
  return v;
}

/** Call `fn` at most once per `ms`, trailing. */
export function useDebounced(fn: () => void, ms: number): () => void {
  const t = useRef<ReturnType<typeof setTimeout> | null>(null);
  const f = useRef(fn);
  f.current = fn;
  useEffect(() => () => void (t.current && clearTimeout(t.current)), []);
  return useCallback(() => {
    if (t.current) return;
    t.current = setTimeout(() => {
      t.current = null;
      f.current();
    }, ms);
  }, [ms]);
}

/** Re-render every `ms` (for "5 s ago" labels and running durations). */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(id);
  }, [ms]);
  return now;
}
