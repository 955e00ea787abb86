import { sizeForRatio } from "./images.js";

// What the horde's online workers can do, from `GET /workers`: the largest image they take and the reasons a
// request would never be picked up (users hate requests that can never run, so the form says so first).

// Online, unpaused workers that serve `model` (any model: all of them).
export function liveWorkers(workers, model) {
  return workers.filter(
    (w) => w.online && !w.maintenance_mode && !w.paused && (!model || (w.models || []).includes(model)),
  );
}

// The most pixels (width × height) one of these workers accepts; 0 when there is none.
export function largestAccepted(workers, model) {
  return Math.max(0, ...liveWorkers(workers, model).map((w) => w.max_pixels || 0));
}

// The side of the largest square (a multiple of 64) within `pixels`.
export function squareFor(pixels) {
  return Math.max(64, Math.floor(Math.sqrt(pixels) / 64) * 64);
}

// Why no online worker would take a request, each with the form's field it concerns and what would make it
// possible: [] when some worker can. `request` = {model, width, height, mode, loras}.
// → [{field: "model" | "size" | "mode" | "loras", text, fix}]
export function blockers(workers, request) {
  const { model, width, height, mode, loras } = request;
  const candidates = liveWorkers(workers, model);
  const of = model ? ` of ${model}` : "";
  if (!candidates.length) {
    const others = liveWorkers(workers, "").length;
    return [
      {
        field: "model",
        text: `No worker${of} is online: the request would wait until one comes.`,
        fix: others && model ? "Pick a model with online workers (or “Any model”)." : "Wait for a worker to come online.",
      },
    ];
  }
  const reasons = [];
  const limit = largestAccepted(workers, model);
  if (width * height > limit) {
    const side = squareFor(limit);
    reasons.push({
      field: "size",
      // The request's own aspect ratio at the most pixels they take: what the "send it at…" button sends.
      resize: sizeForRatio(width / height, limit, 3072),
      text:
        `No online worker${of} accepts ${width}×${height} (${(width * height).toLocaleString()} pixels); ` +
        `the largest they take is ${limit.toLocaleString()} pixels, e.g. ${side}×${side}.`,
      fix: `Pick a size of at most ${limit.toLocaleString()} pixels, e.g. ${side}×${side}.`,
    });
  }
  const fitting = candidates.filter((w) => width * height <= w.max_pixels);
  const pool = fitting.length ? fitting : candidates;
  if (mode === "img2img" && !pool.some((w) => w.img2img)) {
    reasons.push({ field: "mode", text: `No online worker${of} does img2img.`, fix: "Choose “Text to image”." });
  }
  if ((mode === "inpainting" || mode === "outpainting") && !pool.some((w) => w.painting)) {
    reasons.push({
      field: "mode",
      text: `No online worker${of} does inpainting or outpainting.`,
      fix: "Choose “Text to image” or “Image to image”.",
    });
  }
  if (loras && !pool.some((w) => w.lora)) {
    reasons.push({ field: "loras", text: `No online worker${of} accepts LoRAs.`, fix: "Remove the LoRAs." });
  }
  return reasons;
}

// Whether some online worker (of any model) can do `capability`: "post-processing", "controlnet", "lora"…
// Controls for a capability nobody offers stay hidden rather than making requests that can never run.
export function someWorkerCan(workers, capability) {
  return liveWorkers(workers, "").some((w) => Boolean(w[capability]));
}
