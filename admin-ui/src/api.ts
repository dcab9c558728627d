// The REST client: bearer token shared by the browser's tabs, `{"error":{code,message}}`
// bodies turned into ApiError, and a 401 turned into a token prompt (see `auth`).

const TOKEN_KEY = "rte.admin_token";
/** How long a token is kept without being entered again. */
export const TOKEN_TTL_MS = 12 * 3_600_000;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type Listener = () => void;

/** The stored token, or null when there is none or it has expired. */
export function readToken(raw: string | null, now = Date.now()): string | null {
  if (!raw) return null;
  try {
    const v = JSON.parse(raw) as { token?: unknown; expires?: unknown };
    return typeof v.token === "string" && typeof v.expires === "number" && v.expires > now ? v.token : null;
  } catch {
    return null;
  }
}

function storage(): Storage | null {
  try {
    return localStorage;
  } catch {
    return null;
  }
}

/**
 * Token state shared by the whole app: pages refetch when `version` changes. The token is
 * kept in localStorage with an expiry, so every tab of the console uses it; entering or
 * forgetting it in one tab does the same in the others (the `storage` event). After
 * "forget", `locked` hides what was loaded until a token is entered again.
 */
export const auth = {
  version: 0,
  needed: false,
  locked: false,
  listeners: new Set<Listener>(),
  token(): string | null {
    const s = storage();
    const t = readToken(s?.getItem(TOKEN_KEY) ?? null);
    if (!t && s?.getItem(TOKEN_KEY)) s.removeItem(TOKEN_KEY);
    return t;
  },
  setToken(token: string | null) {
    const s = storage();
    if (token) s?.setItem(TOKEN_KEY, JSON.stringify({ token, expires: Date.now() + TOKEN_TTL_MS }));
    else s?.removeItem(TOKEN_KEY);
    this.changed(token != null);
  },
  /** The token was entered (`present`) or forgotten, here or in another tab. */
  changed(present: boolean) {
    this.locked = !present;
    this.needed = !present;
    this.version++;
    this.emit();
  },
  require() {
    if (!this.needed) {
      this.needed = true;
      this.emit();
    }
  },
  emit() {
    for (const l of this.listeners) l();
  },
  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  },
};

if (typeof window !== "undefined") {
  window.addEventListener("storage", (e) => {
    if (e.key === TOKEN_KEY) auth.changed(readToken(e.newValue) != null);
  });
}

export async function api<T>(path: string, init: RequestInit & { json?: unknown } = {}): Promise<T> {
  const headers = new Headers(init.headers);
  headers.set("Accept", "application/json");
  const token = auth.token();
  if (token) headers.set("Authorization", `Bearer ${token}`);
  let body = init.body;
  if (init.json !== undefined) {
    headers.set("Content-Type", "application/json");
    body = JSON.stringify(init.json);
  }
  let res: Response;
  try {
    res = await fetch(path, { ...init, headers, body });
  } catch (e) {
    throw new ApiError(0, "network", `cannot reach the host: ${(e as Error).message}`);
  }
  const text = await res.text();
  let data: unknown = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    if (res.status === 401) auth.require();
    const err = (data as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(res.status, err?.code ?? `http_${res.status}`, err?.message ?? (res.statusText || `HTTP ${res.status}`));
  }
  return data as T;
}

/** The URL of the event stream; EventSource cannot send headers, so the token rides in the query. */
export function streamUrl(): string {
  const token = auth.token();
  return token ? `/api/events/stream?access_token=${encodeURIComponent(token)}` : "/api/events/stream";
}
