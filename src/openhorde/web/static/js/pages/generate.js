// The generate page: the request form (its source image part is source_panel.js) beside the live progress of
// every request sent from this tab (requests.js, one card each from request_card.js). Longer than the other
// modules because the form is one piece: every field feeds the warnings, the price and the request body.
//
// The form's values live in this module, the source image and mask in source_panel.js and the requests in
// requests.js, so leaving the page and coming back finds everything as it was (see requests.js for why).
//
// Handoff (`app.navigate("generate", handoff)`) accepted from other pages:
//   {settings}: a request as sent to /generate/async (prompt with "###negative", params, models or model,
//               nsfw, source_processing) → fills the form;
//   {source: {url, name?}, mode}: load that image as the source ("img2img" by default, or "inpainting").

import { ApiError } from "../api.js";
import { blockers, largestAccepted, liveWorkers, squareFor } from "../availability.js";
import { h, formatKudos, formatSeconds } from "../dom.js";
import { sizeForAspect } from "../images.js";
import { requestColumn } from "../request_card.js";
import * as requests from "../requests.js";
import { SourcePanel, hasSource } from "../source_panel.js";

export const SAMPLERS = [
  "k_lms",
  "k_heun",
  "k_euler",
  "k_euler_a",
  "k_dpm_2",
  "k_dpm_2_a",
  "k_dpm_fast",
  "k_dpm_adaptive",
  "k_dpmpp_2s_a",
  "k_dpmpp_2m",
  "k_dpmpp_sde",
  "dpmsolver",
  "lcm",
  "DDIM",
];
const DEFAULT_SIDE = 512;
const MAX_SIDE = 3072;
const REFRESH_MS = 5000;
const DRY_RUN_DELAY_MS = 700;
const PHONE = "(max-width: 720px)";

// What the form shows; kept across visits to the page.
const form = {
  prompt: "",
  negative: "",
  model: "", // "": any model
  modelChosen: false, // until the user (or a handoff) picks one, the busiest live model is selected
  width: DEFAULT_SIDE,
  height: DEFAULT_SIDE,
  sizeChosen: false, // until the user (or a handoff) sets a size, it follows the model's workers
  steps: 20,
  sampler_name: "k_euler_a",
  cfg_scale: 7,
  seed: "",
  n: 1,
  karras: true,
  nsfw: false,
  allow_downgrade: false,
  gallery: true,
  loras: [],
  mode: "txt2img",
  denoising_strength: 0.6,
  outpaint: { left: false, right: false, top: false, bottom: false, amount: 64 },
};
let models = []; // the last /status/models answer
let workers = []; // the last /workers answer

export async function render(root, app) {
  const handoff = app.handoff;
  app.handoff = null;
  if (handoff?.settings) applySettings(handoff.settings);

  let dryRunTimer = null;
  let confirmed = false; // the user said "send anyway" to the current warnings

  // ---- the form ------------------------------------------------------------------------------------------

  // An input (or textarea, select) showing and setting `form[key]`; `id` is also its label's `for`.
  const bound = (element, key, parse = (v) => v) => {
    element.addEventListener("input", () => {
      form[key] = parse(element.type === "checkbox" ? element.checked : element.value);
      changed();
    });
    return element;
  };
  const number = (v) => (v === "" ? "" : Number(v));
  const input = (attributes) => h("input", attributes);
  const control = (key, testid, attributes, parse) =>
    bound(input({ id: testid, value: form[key], "data-testid": testid, ...attributes }), key, parse);
  const checkbox = (key, testid) => bound(input({ type: "checkbox", checked: form[key], "data-testid": testid }), key);
  const textarea = (key, testid, tag, placeholder) =>
    bound(h(tag, { id: testid, "data-testid": testid, placeholder, value: form[key] }), key);

  const ui = {
    prompt: textarea("prompt", "prompt", "textarea", "A lighthouse on a cliff at dawn, oil painting"),
    negative: textarea("negative", "negative-prompt", "textarea.short", "blurry, text, watermark"),
    model: h("select", { id: "model", "data-testid": "model-select" }),
    modelStats: h("div.model-stats.small", { "data-testid": "model-status", "aria-live": "polite" }, "Loading…"),
    width: sizeInput("width"),
    height: sizeInput("height"),
    sizeNote: h("div.small.muted", { "data-testid": "size-note" }),
    warnings: h("div.warn.small", { "data-testid": "size-warning", role: "status", hidden: true }),
    steps: control("steps", "steps", { type: "number", min: 1, max: 500 }, number),
    cfg: control("cfg_scale", "cfg", { type: "number", min: 0, max: 100, step: 0.5 }, number),
    sampler: h("select", { id: "sampler", "data-testid": "sampler" }, SAMPLERS.map((s) => h("option", { value: s }, s))),
    seed: control("seed", "seed", { type: "text", inputmode: "numeric", placeholder: "random" }),
    n: control("n", "n", { type: "number", min: 1, max: 20 }, number),
    karras: checkbox("karras", "karras"),
    nsfw: checkbox("nsfw", "nsfw"),
    downgrade: checkbox("allow_downgrade", "allow-downgrade"),
    loras: h("div.lora-rows", { "data-testid": "loras" }),
    cost: h("span.muted.small", { "data-testid": "cost" }),
    error: h("div.error", { "data-testid": "form-error", role: "alert", hidden: true }),
    confirm: h("div.confirm", { "data-testid": "confirm-send", hidden: true }),
    submit: h("button.primary", { type: "submit", "data-testid": "generate" }, "Generate"),
  };
  ui.sampler.value = form.sampler_name;
  bound(ui.sampler, "sampler_name");
  ui.model.addEventListener("change", () => {
    form.model = ui.model.value;
    form.modelChosen = true;
    applyDefaultSize();
    renderModels();
    changed();
  });
  const addLora = () => {
    form.loras.push({ name: "", model: 1, clip: 1 });
    renderLoras();
    changed();
  };

  const sourcePanel = new SourcePanel(form, {
    changed: () => changed(),
    toast: app.toast,
    fitSize(image, auto) {
      if (auto && (form.sizeChosen || !largestAccepted(workers, form.model))) return;
      const limit = largestAccepted(workers, form.model) || DEFAULT_SIDE * DEFAULT_SIDE;
      const { width, height } = sizeForAspect(image, Math.min(limit, DEFAULT_SIDE * DEFAULT_SIDE));
      form.sizeChosen = true;
      setSize(width, height);
      changed();
    },
  });

  const keep = app.user
    ? h("label.check.field", {}, checkbox("gallery", "keep-in-gallery"), "Keep the images in my gallery")
    : h(
        "p.muted.small",
        { "data-testid": "anonymous-note" },
        "Anonymous: your images stay in this browser tab only. ",
        h("a", { href: "#/account" }, "Sign in or register"),
        " to keep them in a gallery and get a better queue place.",
      );
  const downgradeHelp =
    "Large images and many steps need kudos upfront; without enough, the server shrinks the request instead of refusing it.";

  const field = (id, label, control, ...extra) => h("div.field", {}, h("label", { for: id }, label), control, ...extra);
  const formElement = h(
    "form.card.generate-form",
    {
      "data-testid": "generate-form",
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        send();
      },
    },
    h("h1", {}, "Generate"),
    field("prompt", "Prompt", ui.prompt),
    field("negative", "Negative prompt (what to avoid)", ui.negative),
    field("model", "Model", ui.model, ui.modelStats),
    h("div.row", {}, field("width", "Width", ui.width), field("height", "Height", ui.height)),
    ui.sizeNote,
    ui.warnings,
    h("div.row", {}, field("steps", "Steps", ui.steps), field("cfg", "CFG scale", ui.cfg)),
    h("div.row", {}, field("sampler", "Sampler", ui.sampler), field("seed", "Seed (empty = random)", ui.seed)),
    h(
      "div.row",
      {},
      field("n", "Images", ui.n),
      h("div.field.checks", {}, h("label.check", {}, ui.karras, "Karras sigmas"), h("label.check", {}, ui.nsfw, "Allow NSFW")),
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, "LoRAs"),
      ui.loras,
      h("button", { type: "button", "data-testid": "add-lora", onclick: addLora }, "+ Add LoRA"),
    ),
    sourcePanel.element,
    h("label.check.field", { title: downgradeHelp }, ui.downgrade, "Shrink it rather than refuse it if it needs kudos upfront"),
    keep,
    ui.error,
    ui.confirm,
    h("div.submit-row", {}, ui.submit, ui.cost),
  );

  // ---- the requests --------------------------------------------------------------------------------------

  const column = requestColumn({
    async cancel(record) {
      try {
        await requests.cancel(record.id);
        app.toast("Request cancelled.", "info");
      } catch (error) {
        app.toast(`Cancelling failed: ${error.message}`, "error");
      }
    },
    dismiss: (record) => requests.dismiss(record.id),
    clearFinished: () => requests.clearFinished(),
    useSettings(record) {
      applySettings(record.summary.settings);
      app.navigate("generate");
    },
    useAsSource: (generation) => sourcePanel.loadUrl(generation.img, "img2img"),
  });

  root.append(h("div.grid-2.generate", {}, formElement, column.element));
  renderLoras();
  column.sync(requests.allRequests(), null);
  const unsubscribe = requests.subscribe((record) => column.sync(requests.allRequests(), record));
  if (handoff?.source?.url) sourcePanel.loadUrl(handoff.source.url, handoff.mode || "img2img", handoff.source.name);
  refreshHorde();
  const refreshTimer = setInterval(refreshHorde, REFRESH_MS);
  changed();

  return () => {
    unsubscribe();
    clearInterval(refreshTimer);
    clearTimeout(dryRunTimer);
  };

  // ---- models, sizes and warnings ----------------------------------------------------------------------------

  function sizeInput(key) {
    const element = input({ id: key, type: "number", min: 64, max: MAX_SIDE, step: 64, value: form[key], "data-testid": key });
    element.addEventListener("input", () => {
      form[key] = Number(element.value) || 0;
      form.sizeChosen = true;
      sourcePanel.sizeChanged();
      changed();
    });
    // Sides are multiples of 64: snap when the user leaves the field.
    element.addEventListener("change", () => {
      const snapped = Math.min(MAX_SIDE, Math.max(64, Math.round((Number(element.value) || 64) / 64) * 64));
      if (snapped === form[key] && String(snapped) === element.value) return;
      form[key] = snapped;
      element.value = String(snapped);
      sourcePanel.sizeChanged();
      changed();
    });
    return element;
  }

  function setSize(width, height) {
    form.width = width;
    form.height = height;
    ui.width.value = String(width);
    ui.height.value = String(height);
    sourcePanel.sizeChanged();
  }

  // The largest square (at most 512) the chosen model's online workers accept, until the user picks a size.
  function applyDefaultSize() {
    const limit = largestAccepted(workers, form.model);
    if (form.sizeChosen || !limit) return;
    const side = Math.min(DEFAULT_SIDE, squareFor(limit));
    if (side !== form.width || side !== form.height) setSize(side, side);
  }

  async function refreshHorde() {
    try {
      [models, workers] = await Promise.all([
        app.api("/status/models", { auth: false }),
        app.api("/workers", { auth: false }),
      ]);
    } catch (error) {
      ui.modelStats.replaceChildren(h("span.error", {}, `Cannot load the models: ${error.message}`));
      return;
    }
    if (!root.isConnected) return;
    // Until the user picks a model, follow the busiest live one; when none is live, keep the one shown (its
    // "no worker online" says what happened, rather than the picker silently switching to "any model").
    const current = models.find((m) => m.name === form.model);
    if (!form.modelChosen && !(current && current.count > 0)) {
      const busiest = byWorkers(models)[0];
      if (busiest && busiest.count > 0) form.model = busiest.name;
    }
    applyDefaultSize();
    renderModels();
    changed({ quiet: true });
  }

  function renderModels() {
    const options = [h("option", { value: "" }, "Any model")];
    for (const model of byWorkers(models)) {
      const label = `${model.name} · ${workerCount(model.count)} · ETA ${formatSeconds(model.eta)}`;
      options.push(h("option", { value: model.name }, label));
    }
    if (form.model && !models.some((m) => m.name === form.model)) {
      options.push(h("option", { value: form.model }, `${form.model} · no worker online`));
    }
    if (document.activeElement !== ui.model) {
      // Not while the user has the list open: replacing the options would close it.
      ui.model.replaceChildren(...options);
      ui.model.value = form.model;
    }

    const live = models.find((m) => m.name === form.model);
    const badge = (count) =>
      h(`span.badge.${count ? "online" : "offline"}`, { "data-testid": "model-workers" }, workerCount(count));
    const stats = [];
    if (!form.model) {
      stats.push(badge(liveWorkers(workers, "").length), " any model: the first free worker takes it.");
    } else if (live) {
      const jobs = `${live.jobs} ${live.jobs === 1 ? "job" : "jobs"}`;
      stats.push(badge(live.count), ` queue ${formatMps(live.queued)} · ${jobs} · ETA ${formatSeconds(live.eta)}`);
    } else {
      stats.push(badge(0), " No worker serves this model right now: requests wait until one comes.");
    }
    const limit = largestAccepted(workers, form.model);
    if (limit) {
      const side = squareFor(limit);
      stats.push(h("div.muted", {}, `Its workers accept up to ${limit.toLocaleString()} pixels (${side}×${side}).`));
    }
    ui.modelStats.replaceChildren(...stats);
  }

  function reasonsNotToSend() {
    const { width, height } = sourcePanel.finalSize();
    return blockers(workers, { model: form.model, width, height, mode: form.mode, loras: activeLoras().length > 0 });
  }

  function renderWarnings() {
    const reasons = reasonsNotToSend();
    ui.warnings.hidden = reasons.length === 0;
    ui.warnings.replaceChildren(...reasons.map((reason) => h("div", {}, "⚠ ", reason)));
    const { width, height } = sourcePanel.finalSize();
    ui.sizeNote.textContent =
      width !== form.width || height !== form.height
        ? `Result: ${width}×${height} (the source ${form.width}×${form.height} plus the new borders).`
        : `${(width * height).toLocaleString()} pixels.`;
    if (!reasons.length) ui.confirm.hidden = true;
  }

  // After any change of the form; `quiet`: only the horde's state changed, so the error message stays and the
  // price (which does not depend on it) is not asked for again.
  function changed({ quiet = false } = {}) {
    renderWarnings();
    if (quiet) return;
    confirmed = false;
    ui.error.hidden = true;
    clearTimeout(dryRunTimer);
    dryRunTimer = setTimeout(estimateCost, DRY_RUN_DELAY_MS);
  }

  // The price, from the server's dry run: the price it will charge.
  async function estimateCost() {
    const body = requestBody({ forDryRun: true });
    if (!body) return;
    try {
      const answer = await app.api("/generate/async", { method: "POST", body: { ...body, dry_run: true } });
      ui.cost.textContent = `Costs ${formatKudos(answer.kudos)} kudos.`;
    } catch {
      ui.cost.textContent = "";
    }
  }

  function activeLoras() {
    return form.loras.filter((lora) => lora.name.trim());
  }

  function renderLoras() {
    const rows = form.loras.map((lora, index) => {
      const strength = (key, label, testid) => {
        const element = input({ type: "number", step: 0.05, min: -5, max: 5, value: lora[key], "data-testid": testid });
        element.setAttribute("aria-label", `LoRA ${index + 1} ${label}`);
        element.addEventListener("input", () => {
          lora[key] = Number(element.value);
          changed();
        });
        return h("label.inline", {}, key, element);
      };
      const name = input({ type: "text", value: lora.name, placeholder: "LoRA name", "data-testid": "lora-name" });
      name.setAttribute("aria-label", `LoRA ${index + 1} name`);
      name.addEventListener("input", () => {
        lora.name = name.value;
        changed();
      });
      const remove = () => {
        form.loras.splice(index, 1);
        renderLoras();
        changed();
      };
      return h(
        "div.lora-row",
        {},
        name,
        strength("model", "strength", "lora-strength"),
        strength("clip", "CLIP strength", "lora-clip"),
        h("button", { type: "button", "data-testid": "remove-lora", onclick: remove }, "✕"),
      );
    });
    ui.loras.replaceChildren(...rows);
  }

  // ---- sending --------------------------------------------------------------------------------------------

  // The /generate/async body for the form, or null when the size is not valid.
  function requestBody({ forDryRun = false } = {}) {
    const { width, height } = sourcePanel.finalSize();
    if (!(width >= 64 && height >= 64 && width % 64 === 0 && height % 64 === 0)) return null;
    const params = {
      width,
      height,
      steps: Number(form.steps) || 1,
      sampler_name: form.sampler_name,
      cfg_scale: Math.round((Number(form.cfg_scale) || 0) * 100) / 100,
      n: Number(form.n) || 1,
      karras: form.karras,
    };
    const seed = String(form.seed).trim();
    if (seed) params.seed = seed;
    const loras = activeLoras();
    if (loras.length) params.loras = loras.map((l) => ({ name: l.name.trim(), model: Number(l.model), clip: Number(l.clip) }));
    const prompt = form.prompt.trim() || (forDryRun ? "x" : "");
    const negative = form.negative.trim();
    const body = {
      prompt: negative ? `${prompt}###${negative}` : prompt,
      params,
      models: form.model ? [form.model] : [],
      nsfw: form.nsfw,
      r2: true,
    };
    if (form.allow_downgrade) body.allow_downgrade = true;
    if (app.user && form.gallery) body.gallery = true; // our extension: keep the images in the user's gallery
    sourcePanel.addTo(body, { forDryRun });
    return body;
  }

  function showError(message) {
    ui.error.textContent = message;
    ui.error.hidden = false;
  }

  async function send() {
    ui.error.hidden = true;
    const problem = form.prompt.trim() ? sourcePanel.problem() : "Write a prompt first.";
    if (problem) return showError(problem);
    const reasons = reasonsNotToSend();
    if (reasons.length && !confirmed) return askToConfirm(reasons);
    const body = requestBody();
    if (!body) return showError("Width and height must be multiples of 64, at least 64.");
    const summary = {
      prompt: form.prompt.trim(),
      negative: form.negative.trim(),
      model: form.model,
      width: body.params.width,
      height: body.params.height,
      steps: body.params.steps,
      n: body.params.n,
      kind: form.mode,
      settings: { ...body, source_image: undefined, source_mask: undefined },
    };
    ui.submit.disabled = true;
    try {
      const record = await requests.submit(body, summary);
      confirmed = false;
      app.toast(app.user ? `Request sent (${record.kudos} kudos).` : "Request sent.", "ok");
      if (window.matchMedia(PHONE).matches) column.cardOf(record.id)?.scrollIntoView({ behavior: "smooth" });
      if (app.user) app.refreshUser();
    } catch (error) {
      const message = error instanceof ApiError ? error.message : String(error);
      showError(message);
      app.toast(message, "error");
    } finally {
      ui.submit.disabled = false;
    }
  }

  function askToConfirm(reasons) {
    const sendAnyway = () => {
      confirmed = true;
      ui.confirm.hidden = true;
      send();
    };
    ui.confirm.replaceChildren(
      h("p.warn", {}, reasons.join(" ")),
      h("p", {}, "Send it anyway?"),
      h(
        "div.actions",
        {},
        h("button", { type: "button", "data-testid": "confirm-send-anyway", onclick: sendAnyway }, "Send anyway"),
        h("button", { type: "button", "data-testid": "confirm-cancel", onclick: () => (ui.confirm.hidden = true) }, "Change it"),
      ),
    );
    ui.confirm.hidden = false;
  }
}

// Fills the form from a request as sent (a gallery image's settings, a finished request's "use these settings").
function applySettings(settings) {
  if (typeof settings.prompt === "string") {
    const cut = settings.prompt.indexOf("###");
    form.prompt = cut < 0 ? settings.prompt : settings.prompt.slice(0, cut);
    form.negative = cut < 0 ? "" : settings.prompt.slice(cut + 3);
  }
  const params = settings.params || {};
  for (const key of ["steps", "sampler_name", "cfg_scale", "n", "karras", "denoising_strength"]) {
    if (params[key] !== undefined && params[key] !== null) form[key] = params[key];
  }
  form.seed = params.seed === undefined || params.seed === null ? "" : String(params.seed);
  if (params.width && params.height) {
    form.width = params.width;
    form.height = params.height;
    form.sizeChosen = true;
  }
  form.loras = (params.loras || []).map((l) => ({ name: l.name, model: l.model ?? 1, clip: l.clip ?? 1 }));
  const model = settings.model ?? (settings.models || [])[0];
  if (model !== undefined) {
    form.model = model || "";
    form.modelChosen = true;
  }
  if (typeof settings.nsfw === "boolean") form.nsfw = settings.nsfw;
  if (typeof settings.allow_downgrade === "boolean") form.allow_downgrade = settings.allow_downgrade;
  // The source image is not part of the settings: the kind only carries over while one is loaded.
  form.mode = settings.source_processing && hasSource() ? settings.source_processing : "txt2img";
}

function byWorkers(list) {
  return [...list].sort((a, b) => b.count - a.count || a.name.localeCompare(b.name));
}

function workerCount(count) {
  return count === 1 ? "1 worker" : `${count} workers`;
}

function formatMps(megapixelsteps) {
  return `${Number(megapixelsteps || 0).toLocaleString(undefined, { maximumFractionDigits: 1 })} MPS`;
}
