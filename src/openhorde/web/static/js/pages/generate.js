// The generate page: the prompt and Generate at the top, the live requests beside them (below them on a phone),
// the settings under the prompt with the rarely changed ones folded under "Advanced settings". Longer than the
// other modules because the form is one piece: every field feeds the warnings, the price and the request body.
// The source image part is source_panel.js, the request cards request_card.js, the size choices sizes.js.
//
// The form's values live in this module and in localStorage (a reload or a new tab finds them as they were), the
// source image and mask in source_panel.js and the requests in requests.js.
//
// Handoff (`app.navigate("generate", handoff)`) accepted from other pages:
//   {settings}: a request as sent to /generate/async (prompt with "###negative", params, models or model,
//               nsfw, source_processing) → fills the form;
//   {source: {url, name?}, mode}: load that image as the source ("img2img" by default, or "inpainting").

import { blockers, largestAccepted, liveWorkers, someWorkerCan, squareFor } from "../availability.js";
import { h, formatKudos, formatSeconds, formatWork } from "../dom.js";
import { canvasToBase64, fitImage, loadImageBlob, newCanvas, sizeForAspect } from "../images.js";
import { openLightbox } from "../lightbox.js";
import { requestColumn, generationItems } from "../request_card.js";
import * as requests from "../requests.js";
import { ASPECTS, aspectOf, presetSizes } from "../sizes.js";
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
const UPSCALERS = ["RealESRGAN_x2plus", "RealESRGAN_x4plus", "RealESRGAN_x4plus_anime_6B", "NMKD_Siax", "4x_AnimeSharp"];
const FACE_FIXERS = ["GFPGAN", "CodeFormers"];
const CONTROL_TYPES = ["canny", "hed", "depth", "normal", "openpose", "seg", "scribble", "fakescribbles", "hough"];
const DEFAULT_SIDE = 512;
const MAX_SIDE = 3072;
const REFRESH_MS = 5000;
const DRY_RUN_DELAY_MS = 700;
const PHONE = "(max-width: 720px)";
const FORM_STORAGE = "openhorde.form";
// What survives a reload: the settings, not the per-image state (the source image lives in this tab only).
const KEPT = [
  "prompt", "negative", "model", "modelChosen", "width", "height", "sizeChosen", "aspect", "steps", "sampler_name",
  "cfg_scale", "seed", "n", "karras", "nsfw", "allow_downgrade", "gallery", "loras", "denoising_strength", "style",
  "upscaler", "facefixer", "facefixer_strength", "strip_background", "control_type", "image_is_control",
  "return_control_map", "advanced",
];
// ControlNet's own image ({image, name}), in this tab only like the source image. Without one, a control type
// uses the source image of "Image to image".
let controlImage = null;

// What the form shows; kept across visits to the page and, through localStorage, across reloads.
const form = {
  prompt: "",
  negative: "",
  model: "", // "": any model
  modelChosen: false, // until the user (or a handoff) picks one, the busiest live model is selected
  width: DEFAULT_SIDE,
  height: DEFAULT_SIDE,
  sizeChosen: false, // until the user (or a handoff) sets a size, it follows the model's workers
  aspect: "1:1",
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
  style: "", // a style's id, or "" for none
  upscaler: "",
  facefixer: "",
  facefixer_strength: 0.75,
  strip_background: false,
  control_type: "",
  image_is_control: false,
  return_control_map: false,
  advanced: false, // whether "Advanced settings" is unfolded
};
restoreForm();
let models = []; // the last /status/models answer
let workers = []; // the last /workers answer
let styles = null; // the /styles/image answer, once loaded

function restoreForm() {
  try {
    const saved = JSON.parse(localStorage.getItem(FORM_STORAGE) || "{}");
    for (const key of KEPT) if (key in saved && typeof saved[key] === typeof form[key]) form[key] = saved[key];
  } catch {
    // A broken entry only costs the saved values.
  }
}

function saveForm() {
  try {
    localStorage.setItem(FORM_STORAGE, JSON.stringify(Object.fromEntries(KEPT.map((key) => [key, form[key]]))));
  } catch {
    // Storage full or disabled: the form still works, it is only not remembered.
  }
}

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
  const checkbox = (key, testid) =>
    bound(input({ type: "checkbox", id: testid, checked: form[key], "data-testid": testid }), key);
  const textarea = (key, testid, tag, placeholder) =>
    bound(h(tag, { id: testid, "data-testid": testid, placeholder, value: form[key] }), key);
  const select = (key, testid, options) => {
    const element = h("select", { id: testid, "data-testid": testid }, options.map(([value, label]) => h("option", { value }, label)));
    element.value = form[key];
    return bound(element, key);
  };
  // A slider with a number box beside it, both showing `form[key]`: the slider for a quick pick, the box for an
  // exact value (or one beyond the slider's range).
  const slider = (key, testid, label, range, box) => {
    const number_ = control(key, testid, { type: "number", ...box }, number);
    const rangeInput = input({ type: "range", value: form[key], "data-testid": `${testid}-slider`, "aria-label": label, ...range });
    rangeInput.addEventListener("input", () => {
      form[key] = Number(rangeInput.value);
      number_.value = rangeInput.value;
      changed();
    });
    number_.addEventListener("input", () => (rangeInput.value = number_.value));
    return h("div.field", {}, h("label", { for: testid }, label), h("div.slider", {}, rangeInput, number_));
  };

  const ui = {
    prompt: textarea("prompt", "prompt", "textarea", "A lighthouse on a cliff at dawn, oil painting"),
    negative: textarea("negative", "negative-prompt", "textarea.short", "blurry, text, watermark"),
    model: h("select", { id: "model", "data-testid": "model-select" }),
    modelStats: h("div.model-stats.small", { "data-testid": "model-status" }, "Loading…"),
    modelWarning: warningBox("model-warning"),
    aspects: h("div.aspects", { role: "group", "aria-label": "Aspect ratio", "data-testid": "aspects" }),
    presets: h("select", { id: "size-preset", "data-testid": "size-preset" }),
    width: sizeInput("width"),
    height: sizeInput("height"),
    sizeNote: h("div.small.muted", { "data-testid": "size-note" }),
    warnings: warningBox("size-warning"),
    modeWarning: warningBox("mode-warning"),
    loraWarning: warningBox("lora-warning"),
    sampler: h("select", { id: "sampler", "data-testid": "sampler" }, SAMPLERS.map((s) => h("option", { value: s }, s))),
    seed: control("seed", "seed", { type: "text", inputmode: "numeric", placeholder: "random" }),
    n: control("n", "n", { type: "number", min: 1, max: 20 }, number),
    karras: checkbox("karras", "karras"),
    nsfw: checkbox("nsfw", "nsfw"),
    downgrade: checkbox("allow_downgrade", "allow-downgrade"),
    loras: h("div.lora-rows", { "data-testid": "loras" }),
    style: h("select", { id: "style", "data-testid": "style" }),
    styleInfo: h("div.style-info.small", { "data-testid": "style-info" }),
    cost: h("span.muted.small", { "data-testid": "cost" }),
    error: h("div.error", { "data-testid": "form-error", role: "alert", hidden: true }),
    confirm: h("div.confirm", { "data-testid": "confirm-send", hidden: true }),
    submit: h("button.primary", { type: "submit", "data-testid": "generate", "aria-keyshortcuts": "Control+Enter" }, "Generate"),
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
  ui.presets.addEventListener("change", () => {
    const [width, height] = ui.presets.value.split("x").map(Number);
    if (!width) return;
    form.sizeChosen = true;
    setSize(width, height);
    changed();
  });
  ui.style.addEventListener("change", () => {
    form.style = ui.style.value;
    renderStyleInfo();
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

  const field = (id, label, control_, ...extra) => h("div.field", {}, h("label", { for: id }, label), control_, ...extra);

  // The post-processing and ControlNet parts: shown only while some online worker offers them.
  const postProcessing = h(
    "fieldset",
    { "data-testid": "post-processing", hidden: true },
    h("legend", {}, "Post-processing"),
    h(
      "div.row",
      {},
      field("upscaler", "Upscale", select("upscaler", "upscaler", [["", "None"], ...UPSCALERS.map((u) => [u, u])])),
      field("facefixer", "Fix faces", select("facefixer", "facefixer", [["", "None"], ...FACE_FIXERS.map((f) => [f, f])])),
    ),
    h("label.check", {}, checkbox("strip_background", "strip-background"), "Remove the background"),
  );
  const controlFile = h("input", { type: "file", id: "control-file", accept: "image/*", "data-testid": "control-file" });
  const controlName = h("span.small.muted", { "data-testid": "control-image-name" }, controlImage?.name ?? "");
  controlFile.addEventListener("change", async () => {
    const file = controlFile.files?.[0];
    if (!file) return;
    try {
      controlImage = { image: await loadImageBlob(file), name: file.name };
      controlName.textContent = file.name;
      changed();
    } catch (error) {
      app.toast(error.message, "error");
    }
  });
  const controlNet = h(
    "fieldset",
    { "data-testid": "controlnet", hidden: true },
    h("legend", {}, "ControlNet"),
    field(
      "control-type",
      "Control type",
      select("control_type", "control-type", [["", "None"], ...CONTROL_TYPES.map((t) => [t, t])]),
    ),
    field(
      "control-file",
      "Control image (without one, the source image of “Image to image” is used)",
      controlFile,
      controlName,
    ),
    h("label.check", {}, checkbox("image_is_control", "image-is-control"), "The image is already a control map"),
    h("label.check", {}, checkbox("return_control_map", "return-control-map"), "Return the control map, not a picture"),
  );
  const styleField = h(
    "div.field",
    { "data-testid": "style-field", hidden: true },
    h("label", { for: "style" }, "Style"),
    ui.style,
    ui.styleInfo,
  );

  const advanced = h(
    "details.advanced",
    { "data-testid": "advanced", open: form.advanced },
    h("summary", {}, "Advanced settings"),
    h("div.row", {}, field("sampler", "Sampler", ui.sampler), field("seed", "Seed (empty = random)", ui.seed)),
    h("div.checks.row", {}, h("label.check", {}, ui.karras, "Karras sigmas"), h("label.check", {}, ui.nsfw, "Allow NSFW")),
    h(
      "fieldset",
      {},
      h("legend", {}, "LoRAs"),
      ui.loras,
      ui.loraWarning,
      h("button", { type: "button", id: "add-lora", "data-testid": "add-lora", onclick: addLora }, "+ Add LoRA"),
    ),
    h(
      "label.check.field",
      {},
      ui.downgrade,
      "Shrink it rather than refuse it if it needs kudos upfront",
    ),
    h(
      "p.muted.small.hint",
      {},
      "Large images and many steps need kudos upfront; with this ticked the server shrinks such a request instead.",
    ),
    keep,
  );
  advanced.addEventListener("toggle", () => {
    form.advanced = advanced.open;
    saveForm();
  });

  // The top: prompt and Generate, always in view (sticky on a desktop; on a phone Generate sits in a bar at the
  // bottom of the screen).
  const top = h(
    "form.card.generate-top",
    {
      "data-testid": "generate-form",
      novalidate: true,
      "aria-label": "Generate",
      onsubmit: (event) => {
        event.preventDefault();
        send();
      },
    },
    h("label.prompt-label", { for: "prompt" }, "Prompt"),
    ui.prompt,
    ui.error,
    ui.confirm,
    h(
      "div.submit-row",
      {},
      ui.submit,
      h("span.small.muted.shortcut", {}, "Ctrl+Enter"),
      ui.cost,
    ),
  );
  const settings = h(
    "section.card.generate-settings",
    { "aria-label": "Settings" },
    field("negative-prompt", "Negative prompt (what to avoid)", ui.negative),
    field("model", "Model", ui.model, ui.modelStats, ui.modelWarning),
    h(
      "fieldset.size",
      {},
      h("legend", {}, "Size"),
      ui.aspects,
      h(
        "div.row",
        {},
        field("size-preset", "Preset", ui.presets),
        field("width", "Width", ui.width),
        field("height", "Height", ui.height),
      ),
      ui.sizeNote,
      ui.warnings,
    ),
    h(
      "div.row",
      {},
      slider("steps", "steps", "Steps", { min: 1, max: 100, step: 1 }, { min: 1, max: 500 }),
      slider("cfg_scale", "cfg", "CFG scale", { min: 1, max: 20, step: 0.5 }, { min: 0, max: 100, step: 0.5 }),
    ),
    field("n", "Images", ui.n),
    sourcePanel.element,
    ui.modeWarning,
    styleField,
    postProcessing,
    controlNet,
    advanced,
  );

  // ---- the requests --------------------------------------------------------------------------------------

  // Re-running one image: its request's settings with that image's seed, one image.
  const rerun = (record, generation) => {
    const settings_ = record.summary.settings;
    applySettings({ ...settings_, params: { ...settings_.params, seed: String(generation.seed), n: 1 } });
    app.navigate("generate");
  };
  const showImage = (record, generation) => {
    const items = generationItems(requests.allRequests(), {
      useAsSource: (g) => sourcePanel.loadUrl(g.img, "img2img"),
      inpaint: (g) => sourcePanel.loadUrl(g.img, "inpainting"),
      rerun,
    });
    const index = items.findIndex((item) => item.url === generation.img);
    openLightbox(items, Math.max(0, index));
  };
  const column = requestColumn({
    async cancel(record) {
      try {
        await requests.cancel(record.id);
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
    open: showImage,
    // The impossible request again at a size the workers take; the form takes that size too.
    async resend(record, { width, height }) {
      try {
        await requests.cancel(record.id);
      } catch {
        // Already ended or gone: sending the smaller one is still what the user asked for.
      }
      const settings_ = record.summary.settings;
      const body = { ...settings_, params: { ...settings_.params, width, height } };
      form.sizeChosen = true;
      setSize(width, height);
      changed();
      try {
        const sent = await requests.submit(body, { ...record.summary, width, height, settings: body });
        column.cardOf(sent.id)?.scrollIntoView({ block: "nearest" });
      } catch (error) {
        showError(error.message, error.field);
      }
    },
    // Why an impossible request cannot run, from the online workers as the page last saw them.
    explain: (record) =>
      blockers(workers, {
        model: record.summary.model,
        width: record.summary.width,
        height: record.summary.height,
        mode: record.summary.kind,
        loras: (record.summary.settings?.params?.loras || []).length > 0,
      }),
  });

  root.append(h("div.generate-layout", {}, top, column.element, settings));
  renderLoras();
  renderAspects();
  // A request that ends moves kudos (its charges land as images finish): the balance is refreshed then.
  const ended = new Set(requests.allRequests().filter((r) => !requests.isActive(r)).map((r) => r.id));
  column.sync(requests.allRequests(), null);
  const unsubscribe = requests.subscribe((record) => {
    column.sync(requests.allRequests(), record);
    if (record && !requests.isActive(record) && !ended.has(record.id)) {
      ended.add(record.id);
      if (app.user) app.refreshUser();
    }
  });
  if (handoff?.source?.url) sourcePanel.loadUrl(handoff.source.url, handoff.mode || "img2img", handoff.source.name);
  refreshHorde();
  loadStyles();
  const refreshTimer = setInterval(refreshHorde, REFRESH_MS);
  const onKey = (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !document.querySelector(".lightbox")) {
      event.preventDefault();
      send();
    }
  };
  document.addEventListener("keydown", onKey);
  changed();

  return () => {
    unsubscribe();
    column.stop();
    clearInterval(refreshTimer);
    clearTimeout(dryRunTimer);
    document.removeEventListener("keydown", onKey);
  };

  // ---- models, sizes and warnings ----------------------------------------------------------------------------

  function warningBox(testid) {
    return h("div.warn.small.field-warning", { "data-testid": testid, role: "status", hidden: true });
  }

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

  // The most pixels the size choices offer: what the model's online workers accept, or (none online) 1024².
  function sizeLimit() {
    return largestAccepted(workers, form.model) || 1024 * 1024;
  }

  // The aspect-ratio buttons and the size presets for the chosen ratio, limited to what the workers accept.
  function renderAspects() {
    // The button clicked stays lit while the size is one of its presets (a tiny budget can bend 16:9 to 2:1).
    const ratioOf = (name) => (ASPECTS.find(([n]) => n === name) || [])[1];
    const fromPreset = form.aspect && presetSizes(ratioOf(form.aspect), sizeLimit()).some((s) => s.width === form.width && s.height === form.height);
    const current = fromPreset ? form.aspect : aspectOf(form.width, form.height);
    ui.aspects.replaceChildren(
      ...ASPECTS.map(([name, ratio]) =>
        h(
          "button",
          {
            type: "button",
            "data-testid": `aspect-${name.replace(":", "-")}`,
            "aria-pressed": String(current === name),
            title: `Aspect ratio ${name}`,
            onclick: () => {
              form.aspect = name;
              form.sizeChosen = true;
              const sizes = presetSizes(ratio, sizeLimit());
              // The largest preset up to 512×512's pixels: quick, and what most models are made for.
              const pick = [...sizes].reverse().find((s) => s.width * s.height <= DEFAULT_SIDE * DEFAULT_SIDE) || sizes[0];
              setSize(pick.width, pick.height);
              changed();
            },
          },
          h("span.aspect-shape", { style: shapeStyle(ratio), "aria-hidden": "true" }),
          name,
        ),
      ),
    );
    const ratio = ratioOf(current) || form.width / form.height;
    const sizes = presetSizes(ratio, sizeLimit());
    const value = `${form.width}x${form.height}`;
    const options = sizes.map((s) => h("option", { value: `${s.width}x${s.height}` }, `${s.width}×${s.height}${s.label ? ` (${s.label})` : ""}`));
    if (!sizes.some((s) => `${s.width}x${s.height}` === value)) options.unshift(h("option", { value }, `${form.width}×${form.height} (custom)`));
    if (document.activeElement !== ui.presets) {
      ui.presets.replaceChildren(...options);
      ui.presets.value = value;
    }
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
    postProcessing.hidden = !someWorkerCan(workers, "post-processing");
    controlNet.hidden = !someWorkerCan(workers, "controlnet");
    changed({ quiet: true });
  }

  async function loadStyles() {
    if (styles === null) {
      try {
        styles = await app.api("/styles/image?sort=popular", { auth: false });
      } catch {
        styles = [];
      }
    }
    if (!root.isConnected) return;
    styleField.hidden = styles.length === 0;
    ui.style.replaceChildren(h("option", { value: "" }, "No style"), ...styles.map((s) => h("option", { value: s.id }, s.name)));
    if (form.style && !styles.some((s) => s.id === form.style)) form.style = "";
    ui.style.value = form.style;
    renderStyleInfo();
  }

  function renderStyleInfo() {
    const style = (styles || []).find((s) => s.id === form.style);
    if (!style) {
      ui.styleInfo.replaceChildren();
      return;
    }
    const examples = (style.examples || []).slice(0, 3);
    const sets = [style.models?.length ? `model ${style.models.join(", ")}` : null, style.params?.steps ? `${style.params.steps} steps` : null];
    // The template in words: "{p}" is the user's prompt, "{np}" where the negative prompt goes.
    const template = style.prompt.replace("{p}", "‹your prompt›").replace("{np}", "").trim();
    const parts = [
      style.info ? h("p", {}, style.info) : null,
      h(
        "p.muted",
        {},
        `Your prompt becomes “${template}”, with the style's own settings`,
        sets.filter(Boolean).length ? ` (${sets.filter(Boolean).join(", ")})` : "",
        "; the number of images and, unless the style sets one, the size stay yours.",
      ),
      examples.length
        ? h("div.style-examples", {}, examples.map((e) => h("img", { src: e.url, alt: `An example of the style ${style.name}`, loading: "lazy" })))
        : null,
    ];
    ui.styleInfo.replaceChildren(...parts.filter(Boolean));
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
      const jobs = `${live.jobs} ${live.jobs === 1 ? "image" : "images"} waiting`;
      // `queued` is in pixel-steps (width × height × steps of the waiting images), as on the models page.
      stats.push(badge(live.count), ` queue ${formatWork(live.queued)} · ${jobs} · ETA ${formatSeconds(live.eta)}`);
    } else {
      stats.push(badge(0), " No worker serves this model right now.");
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

  // Each warning next to the field it concerns, with what would make the request possible.
  function renderWarnings() {
    const reasons = reasonsNotToSend();
    const boxes = { model: ui.modelWarning, size: ui.warnings, mode: ui.modeWarning, loras: ui.loraWarning };
    for (const [name, box] of Object.entries(boxes)) {
      const mine = reasons.filter((r) => r.field === name);
      box.hidden = mine.length === 0;
      box.replaceChildren(...mine.map((r) => h("div", {}, "⚠ ", r.text, " ", h("strong", {}, r.fix))));
    }
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
    renderAspects();
    if (quiet) return;
    saveForm();
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
        h("button", { type: "button", "data-testid": "remove-lora", "aria-label": `Remove LoRA ${index + 1}`, onclick: remove }, "✕"),
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
    // Only what the online workers offer is sent: a hidden control's old value must not make requests impossible.
    if (!postProcessing.hidden) {
      const steps = [form.upscaler, form.facefixer, form.strip_background ? "strip_background" : ""].filter(Boolean);
      if (steps.length) params.post_processing = steps;
      if (form.facefixer) params.facefixer_strength = form.facefixer_strength;
    }
    const control = controlling();
    if (control) {
      params.control_type = form.control_type;
      if (form.image_is_control) params.image_is_control = true;
      if (form.return_control_map) params.return_control_map = true;
    }
    const prompt = form.prompt.trim() || (forDryRun ? "x" : "");
    const negative = form.negative.trim();
    const body = {
      prompt: negative ? `${prompt}###${negative}` : prompt,
      params,
      models: form.model ? [form.model] : [],
      nsfw: form.nsfw,
      r2: true,
    };
    if (form.style && !styleField.hidden) body.style = form.style;
    if (form.allow_downgrade) body.allow_downgrade = true;
    if (app.user && form.gallery) body.gallery = true; // our extension: keep the images in the user's gallery
    if (control === "own-image") {
      // The AI Horde carries ControlNet's image as the request's source image (there is no other field for it).
      body.source_processing = "img2img";
      body.source_image = canvasToBase64(forDryRun ? newCanvas(8, 8) : fitImage(controlImage.image, width, height));
    } else {
      sourcePanel.addTo(body, { forDryRun });
    }
    return body;
  }

  // Whether the request is a ControlNet one, and whose image it controls with: "own-image" (the ControlNet
  // image), "source" (the img2img source), or null (no ControlNet, or nobody offers it).
  function controlling() {
    if (controlNet.hidden || !form.control_type) return null;
    if (controlImage) return "own-image";
    return form.mode === "img2img" ? "source" : null;
  }

  // The one place a refusal shows: under the prompt, by Generate; the control it names is opened and outlined.
  function showError(message, fieldId = null) {
    ui.error.textContent = message;
    ui.error.hidden = false;
    for (const marked of document.querySelectorAll(".needs-attention")) marked.classList.remove("needs-attention");
    const target = fieldId && (document.getElementById(fieldId) || document.querySelector(`[data-testid="${fieldId}"]`));
    if (target) {
      if (advanced.contains(target)) advanced.open = true;
      target.classList.add("needs-attention");
      target.setAttribute("aria-describedby", "form-error");
    }
  }
  ui.error.id = "form-error";

  async function send() {
    ui.error.hidden = true;
    const controlProblem =
      !controlNet.hidden && form.control_type && !controlImage && form.mode !== "img2img"
        ? "Upload a control image for ControlNet (or pick “None” as its control type)."
        : null;
    const sourceProblem = controlling() === "own-image" ? null : sourcePanel.problem();
    const problem = form.prompt.trim() ? controlProblem || sourceProblem : "Write a prompt first.";
    if (problem) return showError(problem, form.prompt.trim() ? null : "prompt");
    const reasons = reasonsNotToSend();
    if (reasons.length && !confirmed) return askToConfirm(reasons);
    const body = requestBody();
    if (!body) return showError("Width and height must be multiples of 64, at least 64.", "width");
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
      // The new card is the newest result: bring it into view (the results pane scrolls on a desktop, the page
      // on a phone), so the user sees it start rather than a message about it.
      const card = column.cardOf(record.id);
      if (card) card.scrollIntoView({ block: "nearest", behavior: window.matchMedia(PHONE).matches ? "smooth" : "auto" });
      if (app.user) app.refreshUser();
    } catch (error) {
      showError(error.message, error.field);
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
      h("p.warn", {}, reasons.map((r) => r.text).join(" ")),
      h("p", {}, reasons.map((r) => r.fix).join(" "), " Or send it anyway: it waits until a worker can take it."),
      h(
        "div.actions",
        {},
        h("button", { type: "button", "data-testid": "confirm-send-anyway", onclick: sendAnyway }, "Send anyway"),
        h("button", { type: "button", "data-testid": "confirm-cancel", onclick: () => (ui.confirm.hidden = true) }, "Change it"),
      ),
    );
    ui.confirm.hidden = false;
    ui.confirm.querySelector("button").focus();
  }
}

// A small rectangle of the ratio's shape for the aspect buttons.
function shapeStyle(ratio) {
  const width = ratio >= 1 ? 16 : Math.round(16 * ratio);
  const height = ratio >= 1 ? Math.round(16 / ratio) : 16;
  return `width:${width}px;height:${height}px`;
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
  if (settings.params) form.seed = params.seed === undefined || params.seed === null ? "" : String(params.seed);
  if (params.width && params.height) {
    form.width = params.width;
    form.height = params.height;
    form.sizeChosen = true;
  }
  if (settings.params) form.loras = (params.loras || []).map((l) => ({ name: l.name, model: l.model ?? 1, clip: l.clip ?? 1 }));
  const model = settings.model ?? (settings.models || [])[0];
  if (model !== undefined) {
    form.model = model || "";
    form.modelChosen = true;
  }
  if (typeof settings.nsfw === "boolean") form.nsfw = settings.nsfw;
  if (typeof settings.allow_downgrade === "boolean") form.allow_downgrade = settings.allow_downgrade;
  if (settings.style !== undefined) form.style = settings.style || "";
  // The source image is not part of the settings: the kind only carries over while one is loaded.
  form.mode = settings.source_processing && hasSource() ? settings.source_processing : "txt2img";
  saveForm();
}

function byWorkers(list) {
  return [...list].sort((a, b) => b.count - a.count || a.name.localeCompare(b.name));
}

function workerCount(count) {
  return count === 1 ? "1 worker" : `${count} workers`;
}
