// Image helpers for source images: load a file or URL, fit it to the request's size on a canvas, and encode
// canvases as base64 WebP the way the API wants `source_image` and `source_mask` (no "data:" prefix).

// Loads an uploaded File (or Blob) as a decoded <img>.
export async function loadImageBlob(blob) {
  const url = URL.createObjectURL(blob);
  const image = new Image();
  image.src = url;
  try {
    await image.decode();
  } catch {
    URL.revokeObjectURL(url);
    throw new Error("This file is not an image the browser can read.");
  }
  return image;
}

// Loads an image by URL through fetch, so drawing it never taints the canvas (the horde's image URLs are on
// the same server, or send CORS headers).
export async function loadImageUrl(url) {
  let response;
  try {
    response = await fetch(url);
  } catch {
    throw new Error("The image could not be downloaded.");
  }
  if (!response.ok) throw new Error(`The image could not be downloaded (HTTP ${response.status}); its link may have expired.`);
  return loadImageBlob(await response.blob());
}

export function newCanvas(width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  return canvas;
}

// Draws `image` scaled to cover a width×height box (centred, the overflow cropped), as the request's size
// rarely has the upload's exact aspect ratio; what the preview shows is exactly what is sent.
export function drawCover(context, image, x, y, width, height) {
  const sourceWidth = image.naturalWidth || image.width;
  const sourceHeight = image.naturalHeight || image.height;
  const scale = Math.max(width / sourceWidth, height / sourceHeight);
  const cropWidth = width / scale;
  const cropHeight = height / scale;
  context.imageSmoothingQuality = "high";
  context.drawImage(
    image,
    (sourceWidth - cropWidth) / 2,
    (sourceHeight - cropHeight) / 2,
    cropWidth,
    cropHeight,
    x,
    y,
    width,
    height,
  );
}

// The source image resized (cover) to width×height.
export function fitImage(image, width, height) {
  const canvas = newCanvas(width, height);
  drawCover(canvas.getContext("2d"), image, 0, 0, width, height);
  return canvas;
}

// Outpainting: a canvas grown by `extend` ({left, right, top, bottom} px) around the fitted source; the new
// area is fully transparent, which our worker (like the AI Horde's) repaints. Returns {image, mask} where the
// mask is white over the new area and black over the source, for workers that read a mask instead.
export function outpaintCanvases(image, width, height, extend) {
  const fullWidth = width + extend.left + extend.right;
  const fullHeight = height + extend.top + extend.bottom;
  const canvas = newCanvas(fullWidth, fullHeight);
  drawCover(canvas.getContext("2d"), image, extend.left, extend.top, width, height);
  const mask = newCanvas(fullWidth, fullHeight);
  const context = mask.getContext("2d");
  context.fillStyle = "#fff";
  context.fillRect(0, 0, fullWidth, fullHeight);
  context.fillStyle = "#000";
  context.fillRect(extend.left, extend.top, width, height);
  return { image: canvas, mask };
}

// base64 WebP of a canvas (`lossless` for masks, whose edges must stay crisp). Browsers that cannot encode WebP
// hand back PNG, which the server reads too.
export function canvasToBase64(canvas, { lossless = false } = {}) {
  const url = canvas.toDataURL("image/webp", lossless ? 1 : 0.95);
  return url.slice(url.indexOf(",") + 1);
}

// Width and height (multiples of 64, each ≥ 64) closest to the image's aspect ratio within `maxPixels`.
export function sizeForAspect(image, maxPixels, maxSide = 1024) {
  return sizeForRatio((image.naturalWidth || image.width) / (image.naturalHeight || image.height), maxPixels, maxSide);
}

// Width and height (multiples of 64, each ≥ 64) closest to `ratio` (width / height) within `maxPixels`; of
// equally close ones, the largest.
export function sizeForRatio(ratio, maxPixels, maxSide = 1024) {
  let best = { width: 64, height: 64 };
  for (let width = 64; width <= maxSide; width += 64) {
    const height = Math.max(64, Math.min(maxSide, Math.round(width / ratio / 64) * 64));
    if (width * height > maxPixels) continue;
    const error = Math.abs(Math.log(width / height / ratio));
    const bestError = Math.abs(Math.log(best.width / best.height / ratio));
    if (error < bestError - 1e-9 || (Math.abs(error - bestError) < 1e-9 && width * height > best.width * best.height)) {
      best = { width, height };
    }
  }
  return best;
}
