// The REST client: bearer token from sessionStorage, `{"error":{code,message}}` bodies turned
// into ApiError, and a 401 turned into a token prompt (see `auth`).

const TOKEN_KEY = "rte.admin_token";

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

/** Token state shared by the whole app: pages refetch when `version` changes. */
export const auth = {
  version: 0,
  needed: false,
  listeners: new Set<Listener>(),
  token(): string | null {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch {
      return null;
    }
  },
  setToken(token: string | null) {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
    this.needed = false;
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
