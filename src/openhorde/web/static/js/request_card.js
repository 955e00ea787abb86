// The generate page's list of requests, one card each: state, queue position and ETA, a progress bar, the
// images as they finish, and the request's actions. Updates change the texts in place and only append new
// images, so the cards can be refreshed every second without flicker.

import { h, formatSeconds } from "./dom.js";

const STATE_LABELS = {
  queued: "Queued",
  processing: "Generating",
  done: "Done",
  cancelled: "Cancelled",
  faulted: "Faulted",
  expired: "Expired",
};

// The "Your requests" column. actions: {cancel(record), dismiss(record), clearFinished(),
// useSettings(record), useAsSource(generation, record), open(record, generation) (the lightbox),
// explain(record) → [{text, fix, resize?}] (why no online worker can take it), resend(record, {width, height})}. → {element, sync(all, changed),
// cardOf(id), stop()}
export function requestColumn(actions) {
  const cards = new Map(); // request id → card
  const list = h("div.request-list", { "data-testid": "request-list" });
  const empty = h("p.muted", { "data-testid": "no-requests" }, "Requests you send appear here, with progress and images.");
  const clear = button("clear-finished", "Clear finished", actions.clearFinished);
  // One live region for the column: it announces a request's changes of state (sent, generating, done), not
  // every poll's figures, which change each second.
  const announcer = h("div.visually-hidden", { "aria-live": "polite", "data-testid": "request-announcer" });
  const element = h(
    "section.requests",
    { "aria-label": "Your requests", "data-testid": "requests" },
    h("div.section-head", {}, h("h2", {}, "Your requests"), clear),
    announcer,
    empty,
    list,
  );
  const announce = (text) => (announcer.textContent = text);
  // Between polls the ETAs count down and the running requests' elapsed time goes up, once a second.
  const ticker = setInterval(() => {
    for (const card of cards.values()) card.tick();
  }, 1000);

  // Updates the card of `changed`, or (null) brings the whole list in line with `all` (newest first).
  function sync(all, changed) {
    empty.hidden = all.length > 0;
    clear.hidden = !all.some((r) => TERMINAL.includes(r.state));
    if (changed && cards.has(changed.id)) {
      cards.get(changed.id).update(changed);
      return;
    }
    const ids = new Set(all.map((r) => r.id));
    for (const [id, card] of cards) {
      if (!ids.has(id)) {
        card.element.remove();
        cards.delete(id);
      }
    }
    all.forEach((record, index) => {
      let card = cards.get(record.id);
      if (card) card.update(record);
      else {
        cards.set(record.id, (card = requestCard(record, actions, announce)));
        if (!changed && index === 0 && Date.now() - record.createdAt < 5000) announce(`Sent: ${clip(record.summary.prompt, 60)}.`);
      }
      if (list.children[index] !== card.element) list.insertBefore(card.element, list.children[index] || null);
    });
  }
  return { element, sync, cardOf: (id) => cards.get(id)?.element, stop: () => clearInterval(ticker) };
}

const TERMINAL = ["done", "cancelled", "faulted", "expired"];

function requestCard(record, actions, announce) {
  const badge = h("span.badge", { "data-testid": "request-state" });
  const title = h("div.request-title", {}, h("strong", {}, clip(record.summary.prompt, 140)));
  const meta = h("div.muted.small", {}, describe(record.summary));
  const stats = h("div.request-stats", { "data-testid": "request-progress-text" });
  const bar = h("span");
  const progress = h(
    "div.progress",
    { role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-label": "Progress", "data-testid": "request-progress" },
    bar,
  );
  const notes = h("div.request-notes");
  const images = h("div.images", { "data-testid": "request-images" });
  const cancelButton = button("cancel", "Cancel", () => actions.cancel(current), { class: "danger" });
  const settingsButton = button("use-settings", "Use these settings", () => actions.useSettings(current));
  const dismissButton = button("dismiss", "Remove", () => actions.dismiss(current));
  const element = h(
    "article.card.request",
    { "data-testid": "request-card", "data-request-id": record.id, "aria-label": `Request ${record.id}` },
    h("div.request-head", {}, badge, title),
    meta,
    stats,
    progress,
    notes,
    images,
    h("div.actions", {}, cancelButton, settingsButton, dismissButton),
  );
  const shown = new Map(); // generation id → figure

  let current = record;
  let announced = record.state;
  function update(next) {
    current = next;
    const { state, check } = next;
    if (state !== announced) {
      announced = state;
      announce(`${clip(next.summary.prompt, 60)}: ${STATE_LABELS[state] || state}.`);
    }
    element.dataset.state = state;
    badge.textContent = STATE_LABELS[state] || state;
    badge.className = `badge state-${state}`;
    stats.textContent = statusLine(next);

    const total = next.summary.n;
    const finished = check.finished || 0;
    // Finished images count whole, ones being generated half: a bar that moves while a worker is busy.
    const share = next.state === "done" ? 1 : Math.min(1, (finished + 0.5 * (check.processing || 0)) / total);
    const percent = Math.round(share * 100);
    bar.style.width = `${Math.max(percent, state === "queued" ? 2 : 0)}%`;
    progress.setAttribute("aria-valuenow", String(percent));
    progress.classList.toggle("busy", state === "processing");
    progress.classList.toggle("failed", state === "faulted" || state === "expired");

    notes.replaceChildren(...noteLines(next, actions));

    for (const generation of next.generations) {
      const key = generation.id || generation.img;
      if (shown.has(key)) continue;
      const figure = resultFigure(generation, next, actions);
      shown.set(key, figure);
      images.append(figure);
    }

    const active = !TERMINAL.includes(state);
    cancelButton.hidden = !active;
    cancelButton.disabled = Boolean(next.cancelling);
    cancelButton.textContent = next.cancelling ? "Cancelling…" : "Cancel";
    dismissButton.hidden = active;
  }
  update(record);
  const tick = () => {
    if (!TERMINAL.includes(current.state)) stats.textContent = statusLine(current);
  };
  return { element, update, tick };
}

function statusLine(record) {
  const { state, check } = record;
  const total = record.summary.n;
  const finished = check.finished || 0;
  const elapsed = formatSeconds(((record.endedAt || Date.now()) - record.createdAt) / 1000);
  switch (state) {
    case "done":
      return `Finished ${finished} of ${total} in ${elapsed}.`;
    case "cancelled":
      return check.processing > 0
        ? `Cancelled: ${finished} of ${total} finished, ${check.processing} still being generated.`
        : `Cancelled: ${finished} of ${total} finished.`;
    case "faulted":
      return (
        `Faulted after ${elapsed}: ${record.faultReason || "no worker could generate it."} ` +
        `${finished} of ${total} finished.`
      );
    case "expired":
      return "The server no longer has this request (finished requests are kept for 20 minutes).";
    default: {
      const counts = `${finished} of ${total} finished · ${elapsed} elapsed`;
      // An impossible request has no queue place or ETA worth showing: the note below says why it waits.
      if (check.is_possible === false) return `Waiting: no online worker can take it · ${counts}`;
      if (state === "processing") {
        const left = remaining(record);
        return `Generating ${check.processing} · ${left === null ? "" : `about ${formatSeconds(left)} left · `}${counts}`;
      }
      const position = check.queue_position ?? "–";
      const left = remaining(record);
      return `Queue position ${position} · ETA ${left === null ? "–" : formatSeconds(left)} · ${counts}`;
    }
  }
}

// The server's `wait_time` counted down since it was given (it is given again at each poll).
function remaining(record) {
  const wait = record.check.wait_time;
  if (wait === null || wait === undefined) return null;
  const since = record.checkedAt ? (Date.now() - record.checkedAt) / 1000 : 0;
  return Math.max(0, wait - since);
}

function noteLines(record, actions) {
  const lines = [];
  if (record.check.is_possible === false && !TERMINAL.includes(record.state)) {
    const reasons = actions.explain ? actions.explain(record) : [];
    const why = reasons.length
      ? reasons.map((r) => r.text).join(" ")
      : "No online worker can generate this request now (its model, size or features).";
    const fix = reasons.length ? reasons.map((r) => r.fix).join(" ") : "Wait for a worker that can, or send a smaller request.";
    // A size nobody takes has a one-click way out for a text-to-image request: the same at a size they take.
    const resize = (reasons.find((r) => r.resize) || {}).resize;
    const resend =
      resize && actions.resend && (record.summary.kind || "txt2img") === "txt2img"
        ? h(
            "button",
            { type: "button", "data-testid": "resend-smaller", onclick: () => actions.resend(record, resize) },
            `Cancel it and send it at ${resize.width}×${resize.height}`,
          )
        : null;
    lines.push(
      h(
        "div.warn.small.impossible",
        { "data-testid": "request-impossible" },
        h("p", {}, why),
        h("p", {}, h("strong", {}, "To make it possible: "), fix, " Or leave it: it waits until a worker can take it."),
        resend,
      ),
    );
  }
  if (record.check.restarted > 0) {
    lines.push(h("p.muted.small", {}, `${record.check.restarted} image(s) restarted after a worker failed.`));
  }
  // "NoAvailableWorker" is what the live `is_possible` note above says while it holds, and stale after.
  for (const warning of record.warnings || []) {
    if (warning.code !== "NoAvailableWorker") lines.push(h("p.warn.small", {}, warning.message));
  }
  if (record.error) lines.push(h("p.error.small", { "data-testid": "request-error" }, `${record.error} Retrying…`));
  return lines;
}

function resultFigure(generation, record, actions) {
  const alt = `Generated: ${clip(record.summary.prompt, 100)} (seed ${generation.seed})`;
  const image = h("img", { src: generation.img, alt, loading: "lazy", "data-testid": "result-image" });
  const expired = () => image.replaceWith(h("div.image-missing", {}, "The image link has expired."));
  image.addEventListener("error", expired, { once: true });
  const open = h(
    "button.image-open",
    { type: "button", "data-testid": "open-image", "aria-label": `View larger: ${alt}`, onclick: () => actions.open(record, generation) },
    image,
  );
  return h(
    "figure",
    { "data-testid": "result" },
    open,
    h(
      "figcaption",
      {},
      generation.censored ? h("div.warn", {}, "Censored by the worker's safety check.") : null,
      h("div", {}, `Seed ${generation.seed} · ${generation.worker_name}`),
      h(
        "div.actions.compact",
        {},
        h("a.button", { href: generation.img, download: `openhorde-${generation.seed}.webp`, "data-testid": "download" }, "Download"),
        button("use-as-source", "Use as source", () => actions.useAsSource(generation, record)),
      ),
    ),
  );
}

// Every image of `records` (newest request first) as lightbox items; `handlers`: {useAsSource(g), inpaint(g),
// rerun(record, g)}.
export function generationItems(records, handlers) {
  return records.flatMap((record) =>
    record.generations.map((generation) => ({
      url: generation.img,
      alt: `Generated: ${clip(record.summary.prompt, 100)} (seed ${generation.seed})`,
      filename: `openhorde-${generation.seed}.webp`,
      settings: settingRows(record, generation),
      useAsSource: () => handlers.useAsSource(generation),
      inpaint: () => handlers.inpaint(generation),
      rerun: () => handlers.rerun(record, generation),
    })),
  );
}

function settingRows(record, generation) {
  const summary = record.summary;
  const params = summary.settings?.params || {};
  const rows = [
    ["Prompt", summary.prompt],
    ["Negative prompt", summary.negative || "–"],
    ["Model", generation.model || summary.model || "any"],
    ["Seed", generation.seed],
    ["Size", `${summary.width}×${summary.height}`],
    ["Steps", summary.steps],
    ["Sampler", params.sampler_name],
    ["CFG scale", params.cfg_scale],
    ["Kind", summary.kind || "txt2img"],
  ];
  if (params.denoising_strength !== undefined) rows.push(["Denoising strength", params.denoising_strength]);
  for (const lora of params.loras || []) rows.push(["LoRA", `${lora.name} (model ${lora.model ?? 1}, clip ${lora.clip ?? 1})`]);
  rows.push(["Worker", generation.worker_name]);
  return rows;
}

function button(testid, label, onclick, attributes = {}) {
  return h("button", { type: "button", "data-testid": testid, onclick, ...attributes }, label);
}

export function describe(summary) {
  const parts = [summary.model || "any model", `${summary.width}×${summary.height}`, `${summary.steps} steps`];
  parts.push(summary.n === 1 ? "1 image" : `${summary.n} images`);
  if (summary.kind && summary.kind !== "txt2img") parts.push(summary.kind);
  return parts.join(" · ");
}

export function clip(text, length) {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}
