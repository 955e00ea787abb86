// Models: every model this horde knows or serves, with its live workers, queue and what those workers accept.
//
// Joins GET /status/models (count = threads of live workers, queue, ETA) with GET /workers (who serves what),
// refreshed every few seconds while the page is open.

import { h, poll, formatPixelSpeed as formatPerformance, formatWork } from "../dom.js";
import { capabilityChips, formatDuration, maxSize, stateBadges } from "./workers.js";

const REFRESH_MS = 5_000;

// The generate page takes a request's settings as its handoff; `model` alone is the brief's shorthand.
function generateWith(app, name) {
  app.navigate("generate", { model: name, settings: { model: name } });
}

// Both lists: "known" is the whole catalogue (served or not), "custom" adds models served outside it.
async function fetchModels(api) {
  const [known, custom] = await Promise.all([
    api("/status/models?model_state=known", { auth: false }),
    api("/status/models?model_state=custom", { auth: false }),
  ]);
  const byName = new Map();
  for (const model of [...known, ...custom]) byName.set(model.name, model);
  return [...byName.values()];
}

// What the online workers of one model accept, e.g. "img2img: 2 of 3 workers".
function capabilitySummary(workers) {
  const online = workers.filter((w) => w.online);
  if (!online.length) return null;
  const count = (test) => online.filter(test).length;
  const part = (label, n) => h("span.chip" + (n ? ".on" : ".off"), { title: `${n} of ${online.length} online workers` }, n === online.length || !n ? label : `${label} (${n}/${online.length})`);
  const biggest = Math.max(...online.map((w) => w.max_pixels || 0));
  return h(
    "div.chips",
    { "data-testid": "model-capabilities" },
    part("img2img", count((w) => w.img2img)),
    part("inpainting", count((w) => w.painting)),
    part("LoRA", count((w) => w.lora)),
    part("post-processing", count((w) => w["post-processing"])),
    h("span.chip.info", {}, `up to ${maxSize(biggest)}`),
  );
}

function modelCard(model, workers, app, openState) {
  const online = model.count > 0;
  const stat = (label, value, testid) => h("div.stat", {}, h("span.stat-label", {}, label), h("span.stat-value", { "data-testid": testid }, value));
  return h(
    "article.card.model-card",
    { "data-testid": "model-card", "data-model": model.name },
    h(
      "div.card-head",
      {},
      h("h2", { "data-testid": "model-name" }, model.name),
      h(`span.badge.${online ? "online" : "offline"}`, { "data-testid": "model-status" }, online ? "online" : "offline"),
    ),
    h(
      "div.stats",
      {},
      stat("Workers", String(model.count), "model-count"),
      stat("Queued jobs", String(model.jobs), "model-jobs"),
      stat("Queued work", formatWork(model.queued), "model-queued"),
      stat("Wait", !online ? (model.jobs ? "no worker" : "–") : model.jobs ? formatDuration(model.eta) : "none", "model-eta"),
      stat("Speed", online ? formatPerformance(model.performance) : "–", "model-performance"),
    ),
    capabilitySummary(workers),
    workers.length
      ? h(
          "details.model-workers",
          {
            "data-testid": "model-workers",
            open: openState.get(model.name) ?? workers.length <= 3,
            ontoggle: (event) => openState.set(model.name, event.currentTarget.open),
          },
          h("summary", {}, `Served by ${workers.length} worker${workers.length === 1 ? "" : "s"}`),
          h(
            "ul.plain",
            {},
            workers.map((w) => h("li", { "data-testid": "model-worker", "data-worker": w.name }, h("strong", {}, w.name), " ", stateBadges(w), h("div", {}, capabilityChips(w)))),
          ),
        )
      : h("p.muted.small", {}, "No worker serves this model at the moment: requests for it wait until one does."),
    h(
      "div.actions",
      {},
      h("button.primary", { type: "button", "data-testid": "model-generate", onclick: () => generateWith(app, model.name) }, "Generate with this model"),
    ),
  );
}

function onlineFirst(a, b) {
  return b.count - a.count || b.jobs - a.jobs || a.name.localeCompare(b.name);
}

// A model no live worker serves, as one compact row: the catalogue is long and most of it may be idle.
function offlineRow(model, app) {
  return h(
    "tr",
    { "data-testid": "model-offline", "data-model": model.name },
    h("td", { "data-label": "Model" }, h("div.cell", {}, h("strong", { "data-testid": "model-name" }, model.name))),
    h("td", { "data-label": "State" }, h("div.cell", {}, h("span.badge.offline", { "data-testid": "model-status" }, "offline"))),
    h("td", { "data-label": "Waiting" }, model.jobs ? h("div.cell.warn", { "data-testid": "model-jobs" }, `${model.jobs} job${model.jobs === 1 ? "" : "s"} waiting`) : h("div.cell.muted", { "data-testid": "model-jobs" }, "no queue")),
    h(
      "td.num",
      { "data-label": "" },
      h("div.cell", {}, h("button", { type: "button", "data-testid": "model-generate", onclick: () => generateWith(app, model.name) }, "Generate")),
    ),
  );
}

export async function render(root, app) {
  const filter = h("input", { type: "search", placeholder: "Filter models…", "aria-label": "Filter models", "data-testid": "models-filter" });
  const onlineOnly = h("input", { type: "checkbox", "data-testid": "models-online-only" });
  const summary = h("p.muted", { "data-testid": "models-summary" }, "Loading models…");
  const list = h("div.model-grid", { "data-testid": "models-list" });
  const idle = h("div", { "data-testid": "models-idle" });
  const errorLine = h("p.error", { "data-testid": "models-error", hidden: true });
  root.append(
    h(
      "section.card",
      {},
      h("div.page-head", {}, h("h1", {}, "Models"), summary),
      h("p.muted", {}, "A model is online while at least one live worker serves it; Workers counts the worker threads ready for it."),
      h("div.row.filters", {}, h("div", {}, filter), h("label.check.grow-0", {}, onlineOnly, "Online only")),
      errorLine,
    ),
    list,
    idle,
  );

  let models = null;
  let workers = [];
  const openState = new Map(); // which "Served by" lists the user opened or closed, kept across refreshes
  let idleOpen = null; // whether the user opened the list of idle models (null: not touched)

  function show() {
    if (models === null) return;
    const needle = filter.value.trim().toLowerCase();
    const served = models.filter((m) => m.count > 0);
    summary.textContent = `${models.length} model${models.length === 1 ? "" : "s"}, ${served.length} online`;
    if (!models.length) {
      list.replaceChildren(
        h(
          "section.card.empty",
          { "data-testid": "models-empty" },
          h("h2", {}, "No models yet"),
          h("p", {}, "This horde has no model in its catalogue and no worker serving one. Start a worker to bring one online."),
          h("p", {}, h("a", { href: "#/my-workers" }, "How to run a worker")),
        ),
      );
      idle.replaceChildren();
      return;
    }
    const wanted = (m) => !needle || m.name.toLowerCase().includes(needle);
    const online = served.filter(wanted).sort(onlineFirst);
    const offline = onlineOnly.checked ? [] : models.filter((m) => m.count === 0 && wanted(m)).sort(onlineFirst);
    if (online.length) {
      list.replaceChildren(...online.map((m) => modelCard(m, workers.filter((w) => (w.models || []).includes(m.name)), app, openState)));
    } else {
      const why = needle ? "No online model matches this filter." : "No worker is online right now, so no model is being served. Requests wait in the queue until a worker comes.";
      list.replaceChildren(h("section.card.empty", { "data-testid": "models-empty" }, h("p", {}, why)));
    }
    if (!offline.length) {
      idle.replaceChildren();
      return;
    }
    const details = h(
      "details.card.idle-models",
      { open: idleOpen ?? (Boolean(needle) || offline.some((m) => m.jobs > 0)) },
      h("summary", {}, h("strong", {}, `${offline.length} model${offline.length === 1 ? "" : "s"} with no worker online`), h("span.muted", {}, " — you can still queue requests for them")),
      h(
        "div.table-wrap",
        {},
        h("table.table-cards.compact", {}, h("tbody", {}, offline.map((m) => offlineRow(m, app)))),
      ),
    );
    details.querySelector("summary").addEventListener("click", () => {
      idleOpen = !details.open;
    });
    idle.replaceChildren(details);
  }

  async function load() {
    try {
      [models, workers] = await Promise.all([fetchModels(app.api), app.api("/workers", { auth: false })]);
    } catch (error) {
      if (models === null) summary.textContent = "";
      throw error;
    } finally {
      show();
    }
  }

  filter.addEventListener("input", show);
  onlineOnly.addEventListener("change", show);
  return poll(load, REFRESH_MS, { errorLine, errorText: (error) => `Could not load the models: ${error.message}` });
}
