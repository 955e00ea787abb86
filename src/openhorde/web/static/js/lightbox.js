// The image viewer shared by the request cards and the gallery: the image as large as the screen allows, zoom
// (buttons, wheel, double-click, + and -) and pan (drag), previous/next (buttons, arrow keys, a swipe), and beside
// it the image's settings and actions (download, use as source, inpaint, re-run, interrogate).
//
// openLightbox(items, index): items = [{url, alt, filename, settings: [[name, value]], useAsSource?, inpaint?,
// rerun?, extra?: () => Node}]; the actions are functions, and the viewer closes before calling one.

import { h } from "./dom.js";
import { interrogatePanel } from "./interrogate_panel.js";

const MAX_ZOOM = 8;
const ZOOM_STEP = 1.5;
const SWIPE_PX = 50;

let openViewer = null; // one viewer at a time

export function openLightbox(items, index = 0) {
  if (!items.length) return;
  openViewer?.close();
  const opener = document.activeElement;
  let at = Math.min(Math.max(0, index), items.length - 1);
  let zoom = 1;
  let pan = { x: 0, y: 0 };

  const image = h("img", { "data-testid": "lightbox-image", draggable: "false" });
  const stage = h("div.lightbox-stage", { "data-testid": "lightbox-stage" }, image);
  const counter = h("span.lightbox-counter", { "data-testid": "lightbox-counter", "aria-live": "polite" });
  const zoomLabel = h("span.zoom-level", { "data-testid": "lightbox-zoom-level" });
  const settings = h("dl.settings-list", { "data-testid": "lightbox-settings" });
  const actions = h("div.actions.lightbox-actions");
  const interrogation = h("div.lightbox-interrogate");
  const previous = button("lightbox-prev", "‹", "Previous image", () => go(-1), "nav-button.prev");
  const next = button("lightbox-next", "›", "Next image", () => go(1), "nav-button.next");
  const closeButton = button("lightbox-close", "✕", "Close the viewer", () => close());
  const title = h("h2.visually-hidden", { id: "lightbox-title" }, "Image viewer");
  const overlay = h(
    "div.lightbox",
    { role: "dialog", "aria-modal": "true", "aria-labelledby": "lightbox-title", "data-testid": "lightbox" },
    h("div.lightbox-main", {}, stage, previous, next),
    h(
      "aside.lightbox-side",
      {},
      title,
      h("div.lightbox-head", {}, counter, closeButton),
      h(
        "div.zoom-controls",
        { role: "group", "aria-label": "Zoom" },
        button("lightbox-zoom-out", "−", "Zoom out", () => zoomTo(zoom / ZOOM_STEP)),
        zoomLabel,
        button("lightbox-zoom-in", "+", "Zoom in", () => zoomTo(zoom * ZOOM_STEP)),
        button("lightbox-fit", "Fit", "Fit the image to the screen", () => zoomTo(1)),
      ),
      actions,
      interrogation,
      settings,
    ),
  );

  function show() {
    const item = items[at];
    image.src = item.url;
    image.alt = item.alt || "";
    counter.textContent = `${at + 1} of ${items.length}`;
    previous.disabled = at === 0;
    next.disabled = at === items.length - 1;
    const act = (testid, label, run) => run && button(testid, label, label, () => {
      close();
      run();
    });
    actions.replaceChildren(
      ...[
        h("a.button", { href: item.url, download: item.filename || "openhorde.webp", "data-testid": "lightbox-download" }, "Download"),
        act("lightbox-use-as-source", "Use as source", item.useAsSource),
        act("lightbox-inpaint", "Inpaint", item.inpaint),
        act("lightbox-rerun", "Re-run", item.rerun),
        item.extra ? item.extra(close) : null,
      ].filter(Boolean),
    );
    interrogation.replaceChildren(interrogatePanel(item.url));
    const shown = (value) => (value === undefined || value === null || value === "" ? "–" : String(value));
    settings.replaceChildren(...(item.settings || []).flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, shown(value))]));
    zoomTo(1);
  }

  function go(step) {
    const target = at + step;
    if (target < 0 || target >= items.length) return;
    at = target;
    show();
  }

  function zoomTo(level) {
    zoom = Math.min(MAX_ZOOM, Math.max(1, level));
    if (zoom === 1) pan = { x: 0, y: 0 };
    clampPan();
    apply();
  }

  // The image may not be dragged further than its zoomed edges.
  function clampPan() {
    const box = stage.getBoundingClientRect();
    const limitX = (box.width * (zoom - 1)) / 2;
    const limitY = (box.height * (zoom - 1)) / 2;
    pan.x = Math.min(limitX, Math.max(-limitX, pan.x));
    pan.y = Math.min(limitY, Math.max(-limitY, pan.y));
  }

  function apply() {
    image.style.transform = `translate(${pan.x}px, ${pan.y}px) scale(${zoom})`;
    stage.dataset.zoom = zoom.toFixed(2);
    stage.classList.toggle("zoomed", zoom > 1);
    zoomLabel.textContent = `${Math.round(zoom * 100)}%`; // of the fitted size
  }

  // Dragging pans a zoomed image; on an unzoomed one a sideways drag (a swipe) goes to the next or previous.
  let drag = null;
  stage.addEventListener("pointerdown", (event) => {
    drag = { x: event.clientX, y: event.clientY, pan: { ...pan } };
    stage.setPointerCapture(event.pointerId);
  });
  stage.addEventListener("pointermove", (event) => {
    if (!drag || zoom === 1) return;
    pan = { x: drag.pan.x + event.clientX - drag.x, y: drag.pan.y + event.clientY - drag.y };
    clampPan();
    apply();
  });
  const endDrag = (event) => {
    if (!drag) return;
    const dx = event.clientX - drag.x;
    const dy = event.clientY - drag.y;
    drag = null;
    if (zoom === 1 && Math.abs(dx) > SWIPE_PX && Math.abs(dx) > Math.abs(dy)) go(dx < 0 ? 1 : -1);
  };
  stage.addEventListener("pointerup", endDrag);
  stage.addEventListener("pointercancel", () => (drag = null));
  stage.addEventListener("wheel", (event) => {
    event.preventDefault();
    zoomTo(event.deltaY < 0 ? zoom * 1.2 : zoom / 1.2);
  }, { passive: false });
  stage.addEventListener("dblclick", () => zoomTo(zoom > 1 ? 1 : 2.5));
  // A click on the dark backdrop (not the image or the panel) closes, as on most sites.
  overlay.addEventListener("click", (event) => {
    if (event.target === overlay) close();
  });

  function onKey(event) {
    if (event.key === "Escape") close();
    else if (event.key === "ArrowLeft") go(-1);
    else if (event.key === "ArrowRight") go(1);
    else if (event.key === "+" || event.key === "=") zoomTo(zoom * ZOOM_STEP);
    else if (event.key === "-") zoomTo(zoom / ZOOM_STEP);
    else if (event.key === "0") zoomTo(1);
    else if (event.key === "Tab") trapFocus(event);
    else return;
    if (event.key !== "Tab") event.preventDefault();
  }

  // Focus stays in the dialog while it is open.
  function trapFocus(event) {
    const focusable = [...overlay.querySelectorAll("button:not(:disabled), a[href]")];
    if (!focusable.length) return;
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      last.focus();
      event.preventDefault();
    } else if (!event.shiftKey && document.activeElement === last) {
      first.focus();
      event.preventDefault();
    }
  }

  function close() {
    if (!overlay.isConnected) return;
    overlay.remove();
    document.removeEventListener("keydown", onKey, true);
    document.body.classList.remove("no-scroll");
    openViewer = null;
    if (opener && opener.isConnected) opener.focus();
  }

  document.body.append(overlay);
  document.body.classList.add("no-scroll");
  document.addEventListener("keydown", onKey, true);
  openViewer = { close };
  show();
  closeButton.focus();
  return openViewer;
}

function button(testid, text, label, onclick, classes = "") {
  return h(`button${classes ? `.${classes}` : ""}`, { type: "button", "data-testid": testid, "aria-label": label, title: label, onclick }, text);
}
