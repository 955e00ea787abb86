// The inpainting mask editor: the source image with a paintable overlay, driven by pointer events (mouse, pen and
// touch alike).
//
// The mask is a canvas at the request's resolution; painted pixels are drawn opaque in a highlight colour and
// shown half transparent over the image. `maskBase64()` turns it into what our worker expects: WHITE = repaint,
// BLACK = keep, same size as the source image.

import { h } from "./dom.js";
import { canvasToBase64, newCanvas } from "./images.js";

const PAINT_COLOUR = "#ff4d6d";

export class MaskEditor {
  constructor({ onChange = () => {} } = {}) {
    this.onChange = onChange;
    this.mode = "paint";
    this.brush = 16;
    this.brushChosen = false; // until the user moves the slider, the page sizes the brush to the image
    this.drawing = null; // the pointer id of the stroke in progress
    this.last = null;
    this.base = newCanvas(64, 64);
    this.mask = newCanvas(64, 64);
    this.base.className = "mask-base";
    this.mask.className = "mask-layer";
    this.mask.setAttribute("data-testid", "mask-canvas");
    this.mask.setAttribute("aria-label", "Mask: paint over the area to repaint");
    this.mask.setAttribute("role", "img");
    this.ring = h("div.brush-ring", { "aria-hidden": "true" });
    this.stack = h("div.canvas-stack.checker", {}, this.base, this.mask, this.ring);

    this.brushInput = h("input", {
      type: "range",
      id: "mask-brush",
      min: 2,
      max: 128,
      value: this.brush,
      "data-testid": "mask-brush",
      oninput: () => {
        this.brushChosen = true;
        this.setBrush(Number(this.brushInput.value));
      },
    });
    this.brushLabel = h("span", {}, `${this.brush} px`);
    const button = (testid, label, onclick, pressed) =>
      h("button", { type: "button", "data-testid": testid, "aria-pressed": pressed, onclick }, label);
    this.paintButton = button("mask-paint", "Brush", () => this.setMode("paint"), "true");
    this.eraseButton = button("mask-erase", "Eraser", () => this.setMode("erase"), "false");
    const clear = button("mask-clear", "Clear", () => this.clear());
    const invert = button("mask-invert", "Invert", () => this.invert());

    this.element = h(
      "div.mask-editor",
      { "data-testid": "mask-editor", "aria-describedby": "mask-keys" },
      h("p.muted.small", {}, "Paint over what should be repainted; the rest of the image is kept."),
      h(
        "p.muted.small.keys-hint",
        { id: "mask-keys" },
        "Keys while a mask control has the focus: [ and ] brush size, B brush, E eraser, I invert, Delete clear.",
      ),
      this.stack,
      h(
        "div.mask-tools",
        {},
        h("div.actions", { role: "group", "aria-label": "Mask tool" }, this.paintButton, this.eraseButton, clear, invert),
        h("div.brush-size", {}, h("label", { for: "mask-brush" }, "Brush size ", this.brushLabel), this.brushInput),
      ),
    );
    this.listen();
    this.element.addEventListener("keydown", (event) => this.onKey(event));
  }

  // The basics without a pointer: brush size, tool, invert and clear.
  onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const step = Math.max(2, Math.round(this.brush / 4));
    const actions = {
      "[": () => this.setBrush(Math.max(2, this.brush - step)),
      "]": () => this.setBrush(Math.min(Number(this.brushInput.max) || 128, this.brush + step)),
      b: () => this.setMode("paint"),
      e: () => this.setMode("erase"),
      i: () => this.invert(),
      Delete: () => this.clear(),
    };
    const run = actions[event.key.length === 1 ? event.key.toLowerCase() : event.key];
    if (!run) return;
    event.preventDefault();
    if (event.key === "[" || event.key === "]") this.brushChosen = true;
    run();
  }

  // Shows `source` (a canvas at the request's size); a mask painted at another size is scaled along.
  setImage(source) {
    const { width, height } = source;
    if (this.mask.width !== width || this.mask.height !== height) {
      const old = this.mask;
      const resized = newCanvas(width, height);
      resized.getContext("2d", { willReadFrequently: true }).drawImage(old, 0, 0, width, height);
      resized.className = old.className;
      for (const name of ["data-testid", "aria-label", "role"]) resized.setAttribute(name, old.getAttribute(name));
      old.replaceWith(resized);
      this.mask = resized;
      this.listen();
      this.brushInput.max = String(Math.max(8, Math.round(Math.max(width, height) / 2)));
    }
    this.base.width = width;
    this.base.height = height;
    this.base.getContext("2d").drawImage(source, 0, 0);
    this.stack.style.aspectRatio = `${width} / ${height}`;
  }

  // The mask is read back often (export, emptiness check, invert): tell the browser to keep it in memory.
  maskContext() {
    return this.mask.getContext("2d", { willReadFrequently: true });
  }

  setBrush(size) {
    this.brush = size;
    this.brushInput.value = String(size);
    this.brushLabel.textContent = `${size} px`;
  }

  setMode(mode) {
    this.mode = mode;
    this.paintButton.setAttribute("aria-pressed", String(mode === "paint"));
    this.eraseButton.setAttribute("aria-pressed", String(mode === "erase"));
  }

  clear() {
    this.maskContext().clearRect(0, 0, this.mask.width, this.mask.height);
    this.onChange();
  }

  invert() {
    const context = this.maskContext();
    const pixels = context.getImageData(0, 0, this.mask.width, this.mask.height);
    const paint = hexToRgb(PAINT_COLOUR);
    for (let i = 0; i < pixels.data.length; i += 4) {
      const painted = pixels.data[i + 3] >= 128;
      pixels.data.set(painted ? [0, 0, 0, 0] : [...paint, 255], i);
    }
    context.putImageData(pixels, 0, 0);
    this.onChange();
  }

  // Whether anything is painted (a mask that keeps everything would change nothing).
  isEmpty() {
    const data = this.maskContext().getImageData(0, 0, this.mask.width, this.mask.height).data;
    for (let i = 3; i < data.length; i += 4) if (data[i] >= 128) return false;
    return true;
  }

  // The black-and-white mask canvas: white where painted (repaint), black elsewhere (keep).
  maskCanvas() {
    const { width, height } = this.mask;
    const painted = this.maskContext().getImageData(0, 0, width, height).data;
    const out = newCanvas(width, height);
    const context = out.getContext("2d");
    const pixels = context.createImageData(width, height);
    for (let i = 0; i < painted.length; i += 4) {
      const value = painted[i + 3] >= 128 ? 255 : 0;
      pixels.data[i] = pixels.data[i + 1] = pixels.data[i + 2] = value;
      pixels.data[i + 3] = 255;
    }
    context.putImageData(pixels, 0, 0);
    return out;
  }

  maskBase64() {
    return canvasToBase64(this.maskCanvas(), { lossless: true });
  }

  // Pointer events cover mouse, pen and touch; `touch-action: none` (CSS) keeps the page from scrolling while
  // painting, and pointer capture keeps a stroke going when it leaves the canvas.
  listen() {
    const canvas = this.mask;
    canvas.addEventListener("pointerdown", (event) => {
      if (event.button !== 0 && event.pointerType === "mouse") return;
      event.preventDefault();
      canvas.setPointerCapture(event.pointerId);
      this.drawing = event.pointerId;
      this.last = this.toImage(event);
      this.stroke(this.last, this.last);
    });
    canvas.addEventListener("pointermove", (event) => {
      this.showRing(event);
      if (this.drawing !== event.pointerId) return;
      const point = this.toImage(event);
      this.stroke(this.last, point);
      this.last = point;
    });
    const end = (event) => {
      if (this.drawing !== event.pointerId) return;
      this.drawing = null;
      this.last = null;
      this.onChange();
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    canvas.addEventListener("pointerleave", () => (this.ring.style.display = "none"));
  }

  toImage(event) {
    const box = this.mask.getBoundingClientRect();
    return {
      x: ((event.clientX - box.left) * this.mask.width) / box.width,
      y: ((event.clientY - box.top) * this.mask.height) / box.height,
    };
  }

  stroke(from, to) {
    const context = this.maskContext();
    context.globalCompositeOperation = this.mode === "erase" ? "destination-out" : "source-over";
    context.strokeStyle = PAINT_COLOUR;
    context.fillStyle = PAINT_COLOUR;
    context.lineWidth = this.brush;
    context.lineCap = "round";
    context.lineJoin = "round";
    context.beginPath();
    context.moveTo(from.x, from.y);
    context.lineTo(to.x, to.y);
    context.stroke();
    context.beginPath();
    context.arc(to.x, to.y, this.brush / 2, 0, Math.PI * 2);
    context.fill();
    context.globalCompositeOperation = "source-over";
  }

  // A ring under the pointer the size of the brush on screen, so the brush size means something.
  showRing(event) {
    if (event.pointerType === "touch") return;
    const box = this.mask.getBoundingClientRect();
    const diameter = (this.brush * box.width) / this.mask.width;
    Object.assign(this.ring.style, {
      display: "block",
      width: `${diameter}px`,
      height: `${diameter}px`,
      left: `${event.clientX - box.left - diameter / 2}px`,
      top: `${event.clientY - box.top - diameter / 2}px`,
    });
  }
}

function hexToRgb(hex) {
  const value = parseInt(hex.slice(1), 16);
  return [(value >> 16) & 255, (value >> 8) & 255, value & 255];
}
