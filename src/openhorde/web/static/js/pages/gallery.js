// The gallery: a signed-in user's images kept by the server (24 a page, newest first), each with its full
// settings and the actions re-run, use as source, inpaint, download and delete. Anonymous users see why there is
// no gallery for them, and the images of this browser tab's requests.
//
// The page number lives in the address (#/gallery?page=2), so a reload or the back button keeps it.

import { ApiError } from "../api.js";
import { h, formatDate } from "../dom.js";
import { openLightbox } from "../lightbox.js";
import { clip, generationItems } from "../request_card.js";
import * as requests from "../requests.js";

export async function render(root, app) {
  root.append(h("h1", {}, "Gallery"));
  if (!app.user) {
    root.append(anonymousView(app));
    return;
  }
  const page = Math.max(1, Number(new URLSearchParams(location.hash.split("?")[1] || "").get("page")) || 1);
  const body = h("div", { "data-testid": "gallery" }, h("p.muted", {}, "Loading your images…"));
  root.append(body);

  let answer;
  try {
    answer = await app.api(`/gallery?page=${page}`);
  } catch (error) {
    const why = `The gallery cannot be loaded: ${error.message}`;
    body.replaceChildren(h("p.error", { "data-testid": "gallery-error", role: "alert" }, why));
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
  const afterDelete = () => reload(answer, page);
  const selection = selectionBar(app, answer, page);
  const selectAll = button("select-all", "Select all on this page", () => {
    for (const box of document.querySelectorAll("[data-testid=select-image]")) {
      if (!box.checked) {
        box.checked = true;
        box.dispatchEvent(new Event("change"));
      }
    }
  }, { class: "small-button" });
  const lightboxItems = answer.images.map((image) => lightboxItem(image, app));
  const items = answer.images.map((image, index) =>
    galleryItem(image, app, afterDelete, selection, () => openLightbox(lightboxItems, index)),
  );
  const count = `${answer.total} ${answer.total === 1 ? "image" : "images"}, newest first.`;
  const parts = [
    h("div.gallery-head", {}, h("p.muted", { "data-testid": "gallery-count" }, count), selectAll, selection.element),
    pager(answer),
    h("div.gallery-grid", { "data-testid": "gallery-grid" }, items),
    pager(answer),
  ];
  body.replaceChildren(...parts.filter(Boolean));
  // A click anywhere else closes an open overflow menu.
  const closeMenus = (event) => {
    for (const menu of document.querySelectorAll(".overflow-menu:not([hidden])")) {
      if (!menu.parentElement.contains(event.target)) closeMenu(menu);
    }
  };
  document.addEventListener("click", closeMenus);
  return () => document.removeEventListener("click", closeMenus);
}

// After a delete: the same page again, or the one before when that was the page's last image(s).
function reload(answer, page, deleted = 1) {
  goTo(page > 1 && answer.images.length <= deleted ? page - 1 : page);
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

// Re-running an image reproduces it: its own seed (the server keeps params without `seed` and `n`), one
// image; clearing the seed field on the generate page then gives variations.
function rerunSettings(image) {
  const params = image.params || {};
  return {
    prompt: image.prompt,
    params: { ...params, seed: String(image.seed), n: 1 },
    models: image.model ? [image.model] : [],
    source_processing: image.source_processing,
  };
}

// As a source, the image starts new variations: its settings without its seed.
function useAsSource(image, app, mode) {
  const settings = rerunSettings(image);
  app.navigate("generate", {
    settings: { ...settings, params: { ...(image.params || {}), n: 1 } },
    source: { url: image.url, name: "gallery image" },
    mode,
  });
}

function lightboxItem(image, app) {
  const [prompt, negative] = splitPrompt(image.prompt);
  return {
    url: image.url,
    alt: clip(prompt, 120),
    filename: `openhorde-${image.seed}.webp`,
    settings: settingRows(image, prompt, negative),
    useAsSource: () => useAsSource(image, app, "img2img"),
    inpaint: () => useAsSource(image, app, "inpainting"),
    rerun: () => app.navigate("generate", { settings: rerunSettings(image) }),
  };
}

// The bar that appears once images are ticked: how many, download them, delete them.
function selectionBar(app, answer, page) {
  const chosen = new Map(); // image id → image
  const label = h("span", { "data-testid": "selection-count", "aria-live": "polite" });
  const confirmBox = h("span.confirm-inline", { hidden: true });
  const element = h(
    "div.selection-bar",
    { "data-testid": "selection-bar", role: "toolbar", "aria-label": "Selected images", hidden: true },
    label,
    button("selection-download", "Download", () => downloadAll()),
    button("selection-delete", "Delete", () => askDelete(), { class: "danger" }),
    button("selection-clear", "Clear selection", () => clearAll()),
    confirmBox,
  );
  function refresh() {
    element.hidden = chosen.size === 0;
    label.textContent = `${chosen.size} selected`;
    confirmBox.hidden = true;
  }
  function clearAll() {
    chosen.clear();
    for (const box of document.querySelectorAll("[data-testid=select-image]")) box.checked = false;
    refresh();
  }
  // One download each, a moment apart (browsers drop downloads started in the same instant).
  async function downloadAll() {
    for (const image of chosen.values()) {
      const link = h("a", { href: image.url, download: `openhorde-${image.seed}.webp` });
      document.body.append(link);
      link.click();
      link.remove();
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  }
  function askDelete() {
    const count = chosen.size;
    confirmBox.replaceChildren(
      `Delete ${count === 1 ? "this image" : `these ${count} images`} for good? `,
      button("selection-confirm-delete", "Delete", () => deleteAll(), { class: "danger" }),
      button("selection-keep", "Keep", () => (confirmBox.hidden = true)),
    );
    confirmBox.hidden = false;
    confirmBox.querySelector("button").focus();
  }
  async function deleteAll() {
    const failed = [];
    for (const image of chosen.values()) {
      try {
        await app.api(`/gallery/${encodeURIComponent(image.id)}`, { method: "DELETE" });
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404)) failed.push(error.message);
      }
    }
    if (failed.length) app.toast(`${failed.length} could not be deleted: ${failed[0]}`, "error");
    reload(answer, page, chosen.size - failed.length);
  }
  return {
    element,
    toggle(image, on) {
      if (on) chosen.set(image.id, image);
      else chosen.delete(image.id);
      refresh();
    },
  };
}

function closeMenu(menu) {
  menu.hidden = true;
  menu.parentElement.querySelector("[aria-haspopup]")?.setAttribute("aria-expanded", "false");
}

function galleryItem(image, app, afterDelete, selection, open) {
  const [prompt] = splitPrompt(image.prompt);
  const item = (testid, label, run, attributes = {}) =>
    h("button", { type: "button", role: "menuitem", "data-testid": testid, onclick: () => {
      closeMenu(menu);
      run();
    }, ...attributes }, label);
  const menu = h(
    "div.overflow-menu",
    { role: "menu", "data-testid": "item-actions", hidden: true },
    item("rerun", "Re-run", () => app.navigate("generate", { settings: rerunSettings(image) })),
    item("use-as-source", "Use as source", () => useAsSource(image, app, "img2img")),
    item("inpaint", "Inpaint", () => useAsSource(image, app, "inpainting")),
    h("a.button", { role: "menuitem", href: image.url, download: `openhorde-${image.seed}.webp`, "data-testid": "download" }, "Download"),
    item("delete", "Delete…", () => confirmDelete(), { class: "danger" }),
  );
  const menuButton = h(
    "button.menu-button",
    {
      type: "button",
      "aria-haspopup": "menu",
      "aria-expanded": "false",
      "aria-label": "More actions",
      title: "More actions",
      "data-testid": "item-menu",
      onclick: () => {
        const opening = menu.hidden;
        for (const other of document.querySelectorAll(".overflow-menu:not([hidden])")) closeMenu(other);
        menu.hidden = !opening;
        menuButton.setAttribute("aria-expanded", String(opening));
        if (opening) menu.querySelector("button, a").focus();
      },
    },
    "⋯",
  );
  menu.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      closeMenu(menu);
      menuButton.focus();
    }
  });
  const tick = h("input", { type: "checkbox", "data-testid": "select-image", "aria-label": `Select: ${clip(prompt, 60)}` });
  tick.addEventListener("change", () => {
    figure.classList.toggle("selected", tick.checked);
    selection.toggle(image, tick.checked);
  });
  const picture = h("img", { src: image.url, alt: clip(prompt, 120), loading: "lazy", "data-testid": "gallery-image" });
  const footer = h("div.item-foot", {}, h("label.select", {}, tick, h("span.visually-hidden", {}, "Select")), h("div.menu-anchor", {}, menuButton, menu));
  const figure = h(
    "figure.gallery-item",
    { "data-testid": "gallery-item", "data-image-id": image.id },
    h("button.image-open", { type: "button", "data-testid": "open-image", "aria-label": `View larger: ${clip(prompt, 80)}`, onclick: open }, picture),
    h(
      "figcaption",
      {},
      h("div.prompt", { title: prompt }, clip(prompt, 90)),
      h("div.muted.small", {}, `${image.model} · ${sizeOf(image)} · ${formatDate(image.created_at)}`),
      image.censored ? h("div.warn.small", {}, "Censored by the worker's safety check.") : null,
      footer,
    ),
  );

  function confirmDelete() {
    const box = h(
      "div.confirm.small",
      { role: "alertdialog", "aria-label": "Delete this image?", "data-testid": "confirm-delete" },
      h("span", {}, "Delete this image for good?"),
      button("confirm-delete-yes", "Delete", () => remove(box), { class: "danger" }),
      button("confirm-delete-no", "Keep", () => box.replaceWith(footer)),
    );
    footer.replaceWith(box);
    box.querySelector("button").focus();
  }

  async function remove(box) {
    try {
      await app.api(`/gallery/${encodeURIComponent(image.id)}`, { method: "DELETE" });
      afterDelete();
    } catch (error) {
      // Already gone (deleted in another tab, say): the reload shows the gallery as it is.
      if (error instanceof ApiError && error.status === 404) return afterDelete();
      app.toast(`Deleting failed: ${error.message}`, "error");
      box.replaceWith(footer);
    }
  }
  return figure;
}

function settingRows(image, prompt, negative) {
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
  return rows;
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

function anonymousView(app) {
  const records = requests.allRequests();
  const items = generationItems(records, {
    useAsSource: (g) => app.navigate("generate", { source: { url: g.img }, mode: "img2img" }),
    inpaint: (g) => app.navigate("generate", { source: { url: g.img }, mode: "inpainting" }),
    rerun: (record, g) => {
      const settings = record.summary.settings;
      app.navigate("generate", { settings: { ...settings, params: { ...settings.params, seed: String(g.seed), n: 1 } } });
    },
  });
  const images = records.flatMap((record) => record.generations.map((generation) => ({ generation, record })));
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
          images.map(({ generation, record }, index) =>
            h(
              "figure",
              {},
              h(
                "button.image-open",
                { type: "button", "data-testid": "open-image", "aria-label": `View larger: ${clip(record.summary.prompt, 80)}`, onclick: () => openLightbox(items, index) },
                h("img", { src: generation.img, alt: clip(record.summary.prompt, 100), loading: "lazy" }),
              ),
              h("figcaption", {}, clip(record.summary.prompt, 80), h("div", {}, `Seed ${generation.seed}`)),
            ),
          ),
        )
      : h("p.muted", {}, "None yet: ", h("a", { href: "#/generate" }, "generate some"), "."),
  );
}
