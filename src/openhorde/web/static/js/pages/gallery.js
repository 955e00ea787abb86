// The gallery: a signed-in user's images kept by the server (24 a page, newest first), each with its full
// settings and the actions re-run, use as source, inpaint, download and delete. Anonymous users see why there is
// no gallery for them, and the images of this browser tab's requests.
//
// The page number lives in the address (#/gallery?page=2), so a reload or the back button keeps it.

import { ApiError } from "../api.js";
import { h, formatDate } from "../dom.js";
import { clip } from "../request_card.js";
import * as requests from "../requests.js";

export async function render(root, app) {
  root.append(h("h1", {}, "Gallery"));
  if (!app.user) {
    root.append(anonymousView());
    return;
  }
  const page = Math.max(1, Number(new URLSearchParams(location.hash.split("?")[1] || "").get("page")) || 1);
  const body = h("div", { "data-testid": "gallery" }, h("p.muted", {}, "Loading your images…"));
  root.append(body);

  let answer;
  try {
    answer = await app.api(`/gallery?page=${page}`);
  } catch (error) {
    const message = error instanceof ApiError ? error.message : String(error);
    const why = `The gallery cannot be loaded: ${message}`;
    body.replaceChildren(h("p.error", { "data-testid": "gallery-error", role: "alert" }, why));
    app.toast(message, "error");
    return;
  }
  if (!answer.total) {
    const none = "No images yet. Images you generate while signed in are kept here. ";
    body.replaceChildren(h("p.muted", { "data-testid": "gallery-empty" }, none, h("a", { href: "#/generate" }, "Generate one.")));
    return;
  }
  if (page > answer.pages) {
    goTo(answer.pages);
    return;
  }
  const items = answer.images.map((image) => galleryItem(image, app, () => reload(answer, page)));
  const count = `${answer.total} ${answer.total === 1 ? "image" : "images"}, newest first.`;
  const parts = [
    h("p.muted", { "data-testid": "gallery-count" }, count),
    pager(answer),
    h("div.gallery-grid", { "data-testid": "gallery-grid" }, items),
    pager(answer),
  ];
  body.replaceChildren(...parts.filter(Boolean));
}

// After a delete: the same page again, or the one before when that was the page's last image.
function reload(answer, page) {
  goTo(page > 1 && answer.images.length === 1 ? page - 1 : page);
}

function goTo(page) {
  const target = `#/gallery?page=${page}`;
  if (location.hash === target) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = target;
}

function pager(answer) {
  if (answer.pages <= 1) return null;
  return h(
    "nav.pager",
    { "aria-label": "Gallery pages", "data-testid": "pager" },
    button("page-previous", "‹ Newer", () => goTo(answer.page - 1), { disabled: answer.page <= 1 }),
    h("span", { "data-testid": "page-label" }, `Page ${answer.page} of ${answer.pages}`),
    button("page-next", "Older ›", () => goTo(answer.page + 1), { disabled: answer.page >= answer.pages }),
  );
}

function galleryItem(image, app, afterDelete) {
  const [prompt, negative] = splitPrompt(image.prompt);
  const params = image.params || {};
  // Re-running an image reproduces it: its own seed (the server keeps params without `seed` and `n`), one
  // image; clearing the seed field on the generate page then gives variations.
  const settings = {
    prompt: image.prompt,
    params: { ...params, seed: String(image.seed), n: 1 },
    models: image.model ? [image.model] : [],
    source_processing: image.source_processing,
  };
  // As a source, the image starts new variations: its settings without its seed.
  const asSource = (mode) => () =>
    app.navigate("generate", {
      settings: { ...settings, params: { ...params, n: 1 } },
      source: { url: image.url, name: "gallery image" },
      mode,
    });
  const actions = h(
    "div.actions.compact",
    {},
    button("rerun", "Re-run", () => app.navigate("generate", { settings }), { title: "The generate page with these settings" }),
    button("use-as-source", "Use as source", asSource("img2img"), { title: "Start an img2img request from this image" }),
    button("inpaint", "Inpaint", asSource("inpainting"), { title: "Paint over part of this image to repaint it" }),
    h("a.button", { href: image.url, download: `openhorde-${image.seed}.webp`, "data-testid": "download" }, "Download"),
    button("delete", "Delete", () => confirmDelete(), { class: "danger" }),
  );
  const picture = h("img", { src: image.url, alt: clip(prompt, 120), loading: "lazy", "data-testid": "gallery-image" });
  const figure = h(
    "figure.gallery-item",
    { "data-testid": "gallery-item", "data-image-id": image.id },
    h("a", { href: image.url, target: "_blank", rel: "noopener", title: "Open full size" }, picture),
    h(
      "figcaption",
      {},
      h("div.prompt", { title: prompt }, clip(prompt, 120)),
      h("div.muted.small", {}, `${image.model} · ${sizeOf(image)} · ${formatDate(image.created_at)}`),
      image.censored ? h("div.warn.small", {}, "Censored by the worker's safety check.") : null,
      h("details", { "data-testid": "settings" }, h("summary", {}, "Settings"), settingsList(image, prompt, negative)),
      actions,
    ),
  );

  function confirmDelete() {
    const box = h(
      "div.confirm.small",
      { role: "alertdialog", "aria-label": "Delete this image?", "data-testid": "confirm-delete" },
      h("span", {}, "Delete this image for good?"),
      button("confirm-delete-yes", "Delete", () => remove(box), { class: "danger" }),
      button("confirm-delete-no", "Keep", () => box.replaceWith(actions)),
    );
    actions.replaceWith(box);
    box.querySelector("button").focus();
  }

  async function remove(box) {
    try {
      await app.api(`/gallery/${encodeURIComponent(image.id)}`, { method: "DELETE" });
      app.toast("Image deleted.", "ok");
      afterDelete();
    } catch (error) {
      // Already gone (deleted in another tab, say): the reload shows the gallery as it is.
      if (error instanceof ApiError && error.status === 404) afterDelete();
      app.toast(`Deleting failed: ${error.message}`, "error");
      box.replaceWith(actions);
    }
  }
  return figure;
}

function settingsList(image, prompt, negative) {
  const params = image.params || {};
  const rows = [
    ["Prompt", prompt],
    ["Negative prompt", negative || "–"],
    ["Model", image.model],
    ["Seed", image.seed],
    ["Size", sizeOf(image)],
    ["Steps", params.steps],
    ["Sampler", params.sampler_name],
    ["CFG scale", params.cfg_scale],
    ["Karras", params.karras ? "yes" : "no"],
    ["Kind", image.source_processing || "txt2img"],
  ];
  if (params.denoising_strength !== undefined) rows.push(["Denoising strength", params.denoising_strength]);
  for (const lora of params.loras || []) {
    rows.push(["LoRA", `${lora.name} (model ${lora.model ?? 1}, clip ${lora.clip ?? 1})`]);
  }
  rows.push(["Worker", image.worker_name || image.worker_id]);
  rows.push(["Created", formatDate(image.created_at)], ["Request id", image.request_id]);
  const shown = (value) => (value === undefined || value === null ? "–" : String(value));
  return h("dl.settings-list", {}, rows.flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, shown(value))]));
}

function sizeOf(image) {
  const params = image.params || {};
  return `${image.width ?? params.width}×${image.height ?? params.height}`;
}

function button(testid, label, onclick, attributes = {}) {
  return h("button", { type: "button", "data-testid": testid, onclick, ...attributes }, label);
}

function splitPrompt(text) {
  const cut = (text || "").indexOf("###");
  return cut < 0 ? [text || "", ""] : [text.slice(0, cut), text.slice(cut + 3)];
}

function anonymousView() {
  const images = requests
    .allRequests()
    .flatMap((record) => record.generations.map((generation) => ({ generation, record })));
  return h(
    "div",
    { "data-testid": "gallery-anonymous" },
    h(
      "div.card",
      {},
      h("p", {}, "The gallery keeps registered users' images on the server, to come back to from any device."),
      h(
        "p",
        {},
        h("a", { href: "#/account" }, "Register or sign in on the Account page"),
        " (registering takes a user name, nothing else). Images of anonymous requests are only kept in this ",
        "browser tab, and the server forgets them after 20 minutes.",
      ),
    ),
    h("h2", {}, "This tab's images"),
    images.length
      ? h(
          "div.images",
          { "data-testid": "session-images" },
          images.map(({ generation, record }) =>
            h(
              "figure",
              {},
              h(
                "a",
                { href: generation.img, target: "_blank", rel: "noopener" },
                h("img", { src: generation.img, alt: clip(record.summary.prompt, 100), loading: "lazy" }),
              ),
              h("figcaption", {}, clip(record.summary.prompt, 80), h("div", {}, `Seed ${generation.seed}`)),
            ),
          ),
        )
      : h("p.muted", {}, "None yet: ", h("a", { href: "#/generate" }, "generate some"), "."),
  );
}
