// Workers: every worker on this horde with its state, models, capabilities and record; filter box, auto-refresh.
//
// Also exports the small worker helpers (state badges, capability chips, durations) that the models and
// my-workers pages reuse.

import { h, formatKudos, poll } from "../dom.js";

const REFRESH_MS = 10_000;

// "3 d 4 h", "2 h 5 min", "4 min 10 s": uptimes run to months, so minutes alone would not do.
export function formatDuration(seconds) {
  if (seconds === undefined || seconds === null) return "–";
  const s = Math.max(0, Math.round(seconds));
  const days = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  if (days) return `${days} d ${hours} h`;
  if (hours) return `${hours} h ${minutes} min`;
  if (minutes) return `${minutes} min ${s % 60} s`;
  return `${s} s`;
}

// The largest square image a worker takes, e.g. 262144 px → "512×512" (sides are multiples of 64).
export function maxSize(maxPixels) {
  if (!maxPixels) return "–";
  const side = Math.max(64, Math.floor(Math.sqrt(maxPixels) / 64) * 64);
  return `${side}×${side}`;
}

// The worker's state as the words a user reads: online or offline, plus maintenance and paused.
export function workerStates(worker) {
  const states = [worker.online ? "online" : "offline"];
  if (worker.maintenance_mode) states.push("maintenance");
  if (worker.paused) states.push("paused");
  return states;
}

export function stateBadges(worker) {
  return h(
    "span.badges",
    { "data-testid": "worker-state" },
    workerStates(worker).map((state) => h(`span.badge.${state}`, { "data-state": state }, state)),
  );
}

// What a worker accepts besides plain txt2img, as chips; `data-capability` names each for tests.
export function capabilityChips(worker) {
  const chips = [];
  const add = (key, label, on) => chips.push(h(`span.chip${on ? ".on" : ".off"}`, { "data-capability": key, title: on ? `${label}: yes` : `${label}: no` }, label));
  add("img2img", "img2img", worker.img2img);
  add("painting", "inpainting", worker.painting);
  add("lora", "LoRA", worker.lora);
  add("post-processing", "post-processing", worker["post-processing"]);
  chips.push(h("span.chip.info", { "data-capability": "max-size", title: `up to ${worker.max_pixels} pixels` }, `max ${maxSize(worker.max_pixels)}`));
  chips.push(h("span.chip.info", { "data-capability": "threads" }, `${worker.threads} thread${worker.threads === 1 ? "" : "s"}`));
  return h("span.chips", { "data-testid": "worker-capabilities" }, chips);
}

// "1.2 megapixelsteps per second" → "1.2 MPS/s", the models page's unit. The API rounds to one decimal, so a
// slow (CPU) worker's "0.0" means less than 0.1, not standing still.
export function formatSpeed(performance) {
  const match = /^([\d.]+) megapixelsteps per second$/.exec(performance || "");
  if (!match) return "not measured yet";
  return Number(match[1]) > 0 ? `${match[1]} MPS/s` : "under 0.1 MPS/s";
}

function matches(worker, needle) {
  if (!needle) return true;
  const haystack = [worker.name, worker.id, worker.owner, worker.info, worker.bridge_agent, ...(worker.models || []), ...workerStates(worker)];
  return haystack.some((text) => text && String(text).toLowerCase().includes(needle));
}

function byStateThenName(a, b) {
  const rank = (w) => (w.online ? 0 : 1) + (w.maintenance_mode || w.paused ? 0.5 : 0);
  return rank(a) - rank(b) || b.requests_fulfilled - a.requests_fulfilled || a.name.localeCompare(b.name);
}

function workerRow(worker) {
  // Each cell's content sits in one box, so that the phone layout (label beside content) keeps it together.
  const cell = (label, ...content) => h("td", { "data-label": label }, h("div.cell", {}, ...content));
  return h(
    "tr",
    { "data-testid": "worker-row", "data-worker": worker.name, "data-worker-id": worker.id },
    cell(
      "Worker",
      h("strong.worker-name", { "data-testid": "worker-name" }, worker.name),
      worker.info ? h("div.muted.small", { "data-testid": "worker-info" }, worker.info) : null,
      worker.trusted ? h("div.small.ok", {}, "trusted owner") : null,
    ),
    cell("State", stateBadges(worker)),
    cell(
      "Models",
      worker.models && worker.models.length
        ? h("span.model-list", { "data-testid": "worker-models" }, worker.models.flatMap((m, i) => [i ? ", " : "", h("span.nowrap", {}, m)]))
        : h("span.muted", {}, "none"),
    ),
    cell("Capabilities", capabilityChips(worker)),
    cell("Speed", h("span", { "data-testid": "worker-speed" }, formatSpeed(worker.performance))),
    cell("Kudos", h("span", { "data-testid": "worker-kudos" }, formatKudos(worker.kudos_rewards))),
    cell("Requests", h("span", { "data-testid": "worker-requests" }, String(worker.requests_fulfilled))),
    cell("Uptime", formatDuration(worker.uptime)),
    cell("Owner", worker.owner ? h("span", { "data-testid": "worker-owner" }, worker.owner) : h("span.muted", {}, "private")),
  );
}

export async function render(root, app) {
  const filter = h("input", { type: "search", placeholder: "Filter by name, model, owner, state…", "aria-label": "Filter workers", "data-testid": "workers-filter" });
  const onlineOnly = h("input", { type: "checkbox", "data-testid": "workers-online-only" });
  const summary = h("p.muted", { "data-testid": "workers-summary" }, "Loading workers…");
  const body = h("div", { "data-testid": "workers-body" });
  const errorLine = h("p.error", { "data-testid": "workers-error", hidden: true });
  root.append(
    h(
      "section.card",
      {},
      h("div.page-head", {}, h("h1", {}, "Workers"), summary),
      h("p.muted", {}, "The machines that generate this horde's images. A worker is online while it keeps asking for jobs."),
      h("div.row.filters", {}, h("div", {}, filter), h("label.check.grow-0", {}, onlineOnly, "Online only")),
      errorLine,
    ),
    body,
  );

  let workers = null;

  function show() {
    if (workers === null) return;
    const needle = filter.value.trim().toLowerCase();
    const shown = workers.filter((w) => matches(w, needle) && (!onlineOnly.checked || w.online)).sort(byStateThenName);
    const online = workers.filter((w) => w.online);
    const threads = online.reduce((sum, w) => sum + (w.threads || 0), 0);
    summary.textContent = `${workers.length} worker${workers.length === 1 ? "" : "s"}, ${online.length} online, ${threads} thread${threads === 1 ? "" : "s"} ready`;
    if (!workers.length) {
      body.replaceChildren(
        h(
          "section.card.empty",
          { "data-testid": "workers-empty" },
          h("h2", {}, "No workers yet"),
          h("p", {}, "Nobody has lent a machine to this horde yet. Start one with your API key:"),
          h("pre.command", {}, `openhorde worker --url ${location.origin} --api-key YOUR_KEY`),
          h("p", {}, h("a", { href: "#/my-workers" }, "How to run a worker")),
        ),
      );
      return;
    }
    if (!shown.length) {
      body.replaceChildren(h("section.card.empty", { "data-testid": "workers-empty" }, h("p", {}, "No worker matches this filter.")));
      return;
    }
    const table = h(
      "table.table-cards",
      { "data-testid": "workers-table" },
      h("thead", {}, h("tr", {}, ["Worker", "State", "Models", "Capabilities", "Speed", "Kudos", "Requests", "Uptime", "Owner"].map((t) => h("th", {}, t)))),
      h("tbody", {}, shown.map(workerRow)),
    );
    body.replaceChildren(h("section.card.flush", {}, h("div.table-wrap", {}, table)));
  }

  async function load() {
    try {
      // Signed in, the owner's own workers show their owner even when the account keeps its workers private.
      workers = await app.api("/workers", { auth: Boolean(app.user) });
    } catch (error) {
      if (workers === null) summary.textContent = "";
      throw error;
    } finally {
      show();
    }
  }

  filter.addEventListener("input", show);
  onlineOnly.addEventListener("change", show);
  return poll(load, REFRESH_MS, { errorLine, errorText: (error) => `Could not load the workers: ${error.message}` });
}
