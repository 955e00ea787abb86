// The image requests sent from this browser tab, and their live progress.
//
// Why a module of its own: the requests outlive the generate page. Its state lives here, not in the page, so
// leaving the page (to look at the gallery, say) and coming back finds every request where it was; the list is
// also kept in sessionStorage, so a reload of the tab resumes it (that is all an anonymous user's images have:
// the server keeps finished requests for 20 minutes and their image links for 30). Polling only runs while a
// page is subscribed: the generate page subscribes when shown and unsubscribes in its cleanup, and the first
// poll after its return catches up on whatever happened meanwhile.

import { api, ApiError } from "./api.js";

const STORAGE_KEY = "openhorde.requests";
const POLL_MS = 1000;
const KEEP_AT_MOST = 40;
const TERMINAL = new Set(["done", "cancelled", "faulted", "expired"]);

let records = load();
const listeners = new Set();
let timer = null;
let polling = false;

function load() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "[]");
    return Array.isArray(saved) ? saved : [];
  } catch {
    return [];
  }
}

function save() {
  try {
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(records.slice(0, KEEP_AT_MOST)));
  } catch {
    // A full or disabled storage only costs the reload-survival; the page keeps working.
  }
}

function changed(record) {
  save();
  for (const listener of listeners) listener(record);
}

export function isActive(record) {
  return !TERMINAL.has(record.state) || (record.state === "cancelled" && record.check?.processing > 0);
}

// Newest first.
export function allRequests() {
  return records;
}

// `listener(record)` runs after any change (record = the one that changed, or null for the list). Polling runs
// while someone listens; the returned function unsubscribes.
export function subscribe(listener) {
  listeners.add(listener);
  schedule(0);
  return () => {
    listeners.delete(listener);
    if (!listeners.size && timer) {
      clearTimeout(timer);
      timer = null;
    }
  };
}

// Sends `body` to /generate/async; `summary` is what the page shows about the request. Throws ApiError.
export async function submit(body, summary) {
  const answer = await api("/generate/async", { method: "POST", body });
  const record = {
    id: answer.id,
    createdAt: Date.now(),
    summary,
    kudos: answer.kudos,
    warnings: answer.warnings || [], // [{code, message}] from the server at creation
    state: "queued",
    check: { waiting: summary.n, processing: 0, finished: 0, queue_position: null, wait_time: null, is_possible: true },
    generations: [],
    error: null,
  };
  records.unshift(record);
  records = records.slice(0, KEEP_AT_MOST);
  changed(null);
  schedule(0);
  return record;
}

export async function cancel(id) {
  const record = records.find((r) => r.id === id);
  if (!record || !isActive(record)) return;
  record.cancelling = true;
  changed(record);
  try {
    const status = await api(`/generate/status/${encodeURIComponent(id)}`, { method: "DELETE", auth: false });
    applyStatus(record, status);
    record.state = "cancelled";
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) expire(record);
    else record.error = error.message;
    throw error;
  } finally {
    record.cancelling = false;
    changed(record);
  }
}

export function dismiss(id) {
  records = records.filter((r) => r.id !== id);
  changed(null);
}

export function clearFinished() {
  records = records.filter(isActive);
  changed(null);
}

function schedule(delay) {
  if (!listeners.size || polling) return;
  if (timer) clearTimeout(timer);
  timer = setTimeout(poll, delay);
}

async function poll() {
  timer = null;
  polling = true;
  try {
    for (const record of records.filter(isActive)) {
      if (!listeners.size) break;
      await refresh(record);
    }
  } finally {
    polling = false;
  }
  if (listeners.size && records.some(isActive)) schedule(POLL_MS);
}

// One poll of one request: /check every time, /status when there are new images or the request ended.
async function refresh(record) {
  let check;
  try {
    check = await api(`/generate/check/${encodeURIComponent(record.id)}`, { auth: false });
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) expire(record);
    else record.error = error.message; // e.g. the server is restarting: keep polling, show why it stalls
    changed(record);
    return;
  }
  record.error = null;
  record.check = check;
  record.checkedAt = Date.now(); // the card counts `wait_time` down from here until the next answer
  const ended = check.done || check.faulted;
  if (check.finished > record.generations.length || ended) {
    try {
      applyStatus(record, await api(`/generate/status/${encodeURIComponent(record.id)}`, { auth: false }));
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) expire(record);
      else record.error = error.message;
      changed(record);
      return;
    }
  }
  if (record.state !== "cancelled") {
    if (check.faulted) record.state = "faulted";
    else if (check.done) record.state = "done";
    else record.state = check.processing > 0 ? "processing" : "queued";
  }
  if (TERMINAL.has(record.state) && !record.endedAt) record.endedAt = Date.now();
  changed(record);
}

function applyStatus(record, status) {
  record.check = { ...record.check, ...pickCounters(status) };
  record.checkedAt = Date.now();
  record.generations = status.generations || [];
  // Our server names a fault's cause when it knows it; the AI Horde's wire has no such field.
  record.faultReason = status.fault_reason || status.message || record.faultReason || null;
}

function pickCounters(status) {
  const { finished, processing, restarted, waiting, done, faulted, wait_time, queue_position, kudos, is_possible } = status;
  return { finished, processing, restarted, waiting, done, faulted, wait_time, queue_position, kudos, is_possible };
}

function expire(record) {
  record.state = "expired";
  record.endedAt = record.endedAt || Date.now();
  record.error = null;
}
