// The "Source image" part of the generate form: the kind of request (text to image, img2img, inpainting,
// outpainting), the uploaded image fitted to the request's size, the mask editor, the outpainting borders, and
// what they add to the request body (`source_image`, `source_mask`, `source_processing`, `denoising_strength`).
//
// The image and the painted mask live in this module, so they survive leaving the generate page.

import { h } from "./dom.js";
import { canvasToBase64, fitImage, loadImageBlob, loadImageUrl, newCanvas, outpaintCanvases } from "./images.js";
import { MaskEditor } from "./mask_editor.js";

export const MODES = [
  ["txt2img", "Text to image"],
  ["img2img", "Image to image"],
  ["inpainting", "Inpainting"],
  ["outpainting", "Outpainting"],
];
const SIDES = ["left", "right", "top", "bottom"];
const OUTPAINT_AMOUNTS = [64, 128, 192, 256];

let source = null; // {image, name}
let maskEditor = null;

export function hasSource() {
  return source !== null;
}

export class SourcePanel {
  // `form`: the page's form state (mode, width, height, denoising_strength, outpaint), shared and kept by the
  // page. `hooks`: changed() after any change, toast(message, kind), fitSize(image, auto) to size the request
  // to an image's aspect ratio (auto: only if the user has not chosen a size).
  constructor(form, hooks) {
    this.form = form;
    this.hooks = hooks;
    this.radios = h(
      "div.modes",
      { role: "radiogroup", "aria-label": "Kind of request" },
      MODES.map(([value, label]) =>
        h(
          "label.check.mode",
          {},
          h("input", {
            type: "radio",
            name: "mode",
            value,
            checked: form.mode === value,
            "data-testid": `mode-${value}`,
            onchange: () => this.setMode(value),
          }),
          label,
        ),
      ),
    );
    this.area = h("div.source-area", { "data-testid": "source-area" });
    this.element = h("fieldset", {}, h("legend", {}, "Source image"), this.radios, this.area);
    this.render();
  }

  setMode(mode) {
    this.form.mode = mode;
    for (const radio of this.radios.querySelectorAll("input")) radio.checked = radio.value === mode;
    this.render();
    this.hooks.changed();
  }

  // Loads an image by URL (a generated or gallery image) as the source, switching to `mode`.
  async loadUrl(url, mode, name = "generated image") {
    try {
      const image = await loadImageUrl(url);
      if (this.form.mode !== mode) this.setMode(mode);
      this.setSource(image, name);
      this.element.scrollIntoView({ behavior: "smooth", block: "center" });
      this.hooks.toast("Image loaded as the source.", "ok");
    } catch (error) {
      this.hooks.toast(error.message, "error");
    }
  }

  setSource(image, name) {
    source = { image, name };
    maskEditor?.clear();
    this.hooks.fitSize(image, true);
    this.render();
    this.hooks.changed();
  }

  // The request's size changed: the previews and the mask follow.
  sizeChanged() {
    if (!source || this.form.mode === "txt2img") return;
    const info = this.area.querySelector("[data-testid=source-info] span");
    if (info) info.textContent = this.describeSource();
    if (this.form.mode === "img2img") this.drawPreview();
    if (this.form.mode === "inpainting" && maskEditor) maskEditor.setImage(this.fitted());
    if (this.form.mode === "outpainting") this.drawOutpaintPreview();
  }

  // The image's size on the wire: the form's size, grown by the outpainting borders.
  finalSize() {
    const { width, height } = this.form;
    if (this.form.mode !== "outpainting") return { width, height };
    const grow = this.borders();
    return { width: width + grow.left + grow.right, height: height + grow.top + grow.bottom };
  }

  // What stops sending, in words; null when nothing does.
  problem() {
    const { mode, outpaint } = this.form;
    if (mode === "txt2img") return null;
    if (!source) return "Upload a source image first (or pick “Text to image”).";
    if (mode === "inpainting" && (!maskEditor || maskEditor.isEmpty())) {
      return "Paint the area to repaint on the image first.";
    }
    if (mode === "outpainting" && SIDES.every((side) => !outpaint[side])) return "Choose at least one side to extend.";
    return null;
  }

  // Adds the source fields to a request body. A dry run only needs to know that there is a source (the price
  // depends on nothing else), so a tiny stand-in spares encoding the real image on every keystroke.
  addTo(body, { forDryRun = false } = {}) {
    const { mode } = this.form;
    if (mode === "txt2img" || !source) return;
    body.source_processing = mode;
    if (mode === "img2img") body.params.denoising_strength = this.form.denoising_strength;
    if (forDryRun) {
      body.source_image = canvasToBase64(newCanvas(8, 8));
    } else if (mode === "outpainting") {
      const { image, mask } = outpaintCanvases(source.image, this.form.width, this.form.height, this.borders());
      body.source_image = canvasToBase64(image);
      body.source_mask = canvasToBase64(mask, { lossless: true });
    } else {
      body.source_image = canvasToBase64(this.fitted());
      if (mode === "inpainting") body.source_mask = maskEditor.maskBase64();
    }
  }

  // ---- rendering ----------------------------------------------------------------------------------------

  render() {
    if (this.form.mode === "txt2img") {
      this.area.replaceChildren(h("p.muted.small", {}, "Pick another kind to start from an image of yours."));
      return;
    }
    const file = h("input", { type: "file", id: "source-file", accept: "image/*", "data-testid": "source-file" });
    file.addEventListener("change", async () => {
      if (!file.files?.length) return;
      try {
        this.setSource(await loadImageBlob(file.files[0]), file.files[0].name);
      } catch (error) {
        this.hooks.toast(error.message, "error");
      }
    });
    const label = source ? "Replace the source image" : "Upload a source image";
    const parts = [h("div.field", {}, h("label", { for: "source-file" }, label), file)];
    if (source) {
      const fit = () => this.hooks.fitSize(source.image, false);
      const remove = () => {
        source = null;
        maskEditor?.clear();
        this.render();
        this.hooks.changed();
      };
      parts.push(
        h(
          "div.source-info.small",
          { "data-testid": "source-info" },
          h("span", {}, this.describeSource()),
          h("button", { type: "button", "data-testid": "fit-size", onclick: fit }, "Fit size to image"),
          h("button", { type: "button", "data-testid": "remove-source", onclick: remove }, "Remove"),
        ),
      );
      if (this.form.mode === "img2img") parts.push(...this.img2imgControls());
      if (this.form.mode === "inpainting") parts.push(this.maskControls());
      if (this.form.mode === "outpainting") parts.push(...this.outpaintControls());
    }
    this.area.replaceChildren(...parts);
  }

  describeSource() {
    const { image, name } = source;
    return `${name} (${image.naturalWidth}×${image.naturalHeight}), resized to ${this.form.width}×${this.form.height}`;
  }

  fitted() {
    return fitImage(source.image, this.form.width, this.form.height);
  }

  img2imgControls() {
    const preview = h("canvas.preview", {
      "data-testid": "source-preview",
      role: "img",
      "aria-label": "The source image at the request's size",
    });
    const value = h("output", { for: "denoising" }, this.form.denoising_strength.toFixed(2));
    const slider = h("input", {
      type: "range",
      id: "denoising",
      min: 0.05,
      max: 1,
      step: 0.05,
      value: this.form.denoising_strength,
      "data-testid": "denoising",
    });
    slider.addEventListener("input", () => {
      this.form.denoising_strength = Number(slider.value);
      value.textContent = this.form.denoising_strength.toFixed(2);
      this.hooks.changed();
    });
    queueMicrotask(() => this.drawPreview());
    const hint = h("span.muted", {}, " (low: stay close to the source; 1: ignore it)");
    return [preview, h("div.field", {}, h("label", { for: "denoising" }, "Denoising strength ", value, hint), slider)];
  }

  drawPreview() {
    const canvas = this.area.querySelector("[data-testid=source-preview]");
    if (!canvas || !source) return;
    canvas.width = this.form.width;
    canvas.height = this.form.height;
    canvas.getContext("2d").drawImage(this.fitted(), 0, 0);
  }

  maskControls() {
    if (!maskEditor) maskEditor = new MaskEditor({ onChange: () => this.hooks.changed() });
    maskEditor.setImage(this.fitted());
    // A brush a tenth of the image wide, until the user sets one.
    const { width, height } = this.form;
    if (!maskEditor.brushChosen) maskEditor.setBrush(Math.max(4, Math.round(Math.max(width, height) / 10)));
    return maskEditor.element;
  }

  outpaintControls() {
    const { outpaint } = this.form;
    const sides = SIDES.map((side) =>
      h(
        "label.check",
        {},
        h("input", {
          type: "checkbox",
          checked: outpaint[side],
          "data-testid": `outpaint-${side}`,
          onchange: (event) => {
            outpaint[side] = event.target.checked;
            this.drawOutpaintPreview();
            this.hooks.changed();
          },
        }),
        side,
      ),
    );
    const amount = h(
      "select",
      { id: "outpaint-amount", "data-testid": "outpaint-amount" },
      OUTPAINT_AMOUNTS.map((px) => h("option", { value: px }, `${px} px`)),
    );
    amount.value = String(outpaint.amount);
    amount.addEventListener("change", () => {
      outpaint.amount = Number(amount.value);
      this.drawOutpaintPreview();
      this.hooks.changed();
    });
    const preview = h("canvas.preview.checker", {
      "data-testid": "outpaint-preview",
      role: "img",
      "aria-label": "The extended canvas: the checkered area is painted by the worker",
    });
    queueMicrotask(() => this.drawOutpaintPreview());
    return [
      h("p.muted.small", {}, "Extend the image on the chosen sides; the worker paints the new (checkered) area."),
      h(
        "div.row.outpaint-sides",
        {},
        h("div.checks", { role: "group", "aria-label": "Sides to extend" }, sides),
        h("div.field", {}, h("label", { for: "outpaint-amount" }, "By"), amount),
      ),
      preview,
      h("p.small.muted", { "data-testid": "outpaint-size" }),
    ];
  }

  drawOutpaintPreview() {
    const canvas = this.area.querySelector("[data-testid=outpaint-preview]");
    if (!canvas || !source) return;
    const { width, height } = this.finalSize();
    this.area.querySelector("[data-testid=outpaint-size]").textContent = `Result: ${width}×${height}.`;
    const { image } = outpaintCanvases(source.image, this.form.width, this.form.height, this.borders());
    canvas.width = image.width;
    canvas.height = image.height;
    canvas.getContext("2d").drawImage(image, 0, 0);
  }

  borders() {
    const { outpaint } = this.form;
    const px = (side) => (outpaint[side] ? outpaint.amount : 0);
    return { left: px("left"), right: px("right"), top: px("top"), bottom: px("bottom") };
  }
}
