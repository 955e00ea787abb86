// The one way the UI talks to the server: JSON over /api/v2, errors as ApiError carrying the API's message and rc.

export const ANONYMOUS_KEY = "0000000000";
const KEY_STORAGE = "openhorde.apikey";
const CLIENT_AGENT = "OpenHorde Web UI:0.1.0:local";

import { plain } from "./messages.js";

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

const RATE_LIMIT_RETRIES = 2;
const RATE_LIMIT_MAX_WAIT_S = 15;

// Calls `/api/v2${path}`; `auth` sends the stored key (anonymous when none). Resolves to the parsed body.
// A GET refused by a rate limit (429) waits for its Retry-After and tries again: polling pages (progress,
// models) then slow down instead of showing errors. Other methods are not retried: they may have effects.
export async function api(path, options = {}) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await callOnce(path, options);
    } catch (error) {
      const method = options.method || "GET";
      const wait = error instanceof ApiError ? error.retryAfter : null;
      if (method !== "GET" || error.status !== 429 || attempt >= RATE_LIMIT_RETRIES || !wait || wait > RATE_LIMIT_MAX_WAIT_S) {
        throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, wait * 1000));
    }
  }
}

async function callOnce(path, { method = "GET", body, auth = true, key } = {}) {
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
    const error = new ApiError(message, (data && data.rc) || "HTTPError", response.status);
    // Validation errors carry per-field reasons: messages.js turns them into sentences about the form.
    error.errors = (data && data.errors) || null;
    error.retryAfter = Number(response.headers.get("Retry-After")) || null;
    // What every page shows: a plain sentence (messages.js); the API's own words stay in serverMessage.
    error.serverMessage = message;
    error.field = plain(error).field;
    error.message = plain(error).text;
    throw error;
  }
  return data;
}
