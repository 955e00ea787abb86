// The one way the UI talks to the server: JSON over /api/v2, errors as ApiError carrying the API's message and rc.

export const ANONYMOUS_KEY = "0000000000";
const KEY_STORAGE = "openhorde.apikey";
const CLIENT_AGENT = "OpenHorde Web UI:0.1.0:local";

export class ApiError extends Error {
  constructor(message, rc, status) {
    super(message);
    this.rc = rc;
    this.status = status;
  }
}

export function storedKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function storeKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

// Calls `/api/v2${path}`; `auth` sends the stored key (anonymous when none). Resolves to the parsed body.
export async function api(path, { method = "GET", body, auth = true, key } = {}) {
  const headers = { "Client-Agent": CLIENT_AGENT };
  if (auth) headers.apikey = key || storedKey() || ANONYMOUS_KEY;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`/api/v2${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError("The server cannot be reached. Is it running?", "NetworkError", 0);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = (data && data.message) || `The server answered HTTP ${response.status}.`;
    throw new ApiError(errorDetails(message, data), (data && data.rc) || "HTTPError", response.status);
  }
  return data;
}

// Validation errors carry per-field messages in `errors`: show them with the message.
function errorDetails(message, data) {
  if (!data || !data.errors) return message;
  const fields = Object.entries(data.errors).map(([field, why]) => `${field}: ${why}`);
  return fields.length ? `${message} (${fields.join("; ")})` : message;
}
