// The size choices of the generate form: aspect ratios and, for each, a few preset sizes (sides multiples of 64)
// up to the most pixels the online workers accept, so the form offers no size nobody would generate.

import { sizeForRatio } from "./images.js";

// [name, width / height]
export const ASPECTS = [
  ["1:1", 1],
  ["4:3", 4 / 3],
  ["3:4", 3 / 4],
  ["3:2", 3 / 2],
  ["2:3", 2 / 3],
  ["16:9", 16 / 9],
  ["9:16", 9 / 16],
];

// Pixel budgets of the presets: 256², 512², 768², 1024², 1536² (and the workers' own limit).
const BUDGETS = [
  [256 * 256, "small"],
  [512 * 512, "medium"],
  [768 * 768, "large"],
  [1024 * 1024, "XL"],
  [1536 * 1536, "XXL"],
];

// The aspect name whose ratio width×height has (within 3%), or null.
export function aspectOf(width, height) {
  if (!width || !height) return null;
  const found = ASPECTS.find(([, ratio]) => Math.abs(Math.log(width / height / ratio)) < 0.03);
  return found ? found[0] : null;
}

// Sizes of `ratio` for each budget up to `maxPixels`, plus the largest within `maxPixels` itself; smallest
// first, no duplicates. → [{width, height, label}]
export function presetSizes(ratio, maxPixels) {
  const sizes = [];
  const add = (budget, label) => {
    const size = sizeForRatio(ratio, Math.min(budget, maxPixels), 2048);
    if (size.width * size.height > maxPixels) return;
    const same = sizes.find((s) => s.width === size.width && s.height === size.height);
    if (same) return;
    sizes.push({ ...size, label });
  };
  for (const [budget, label] of BUDGETS) if (budget <= maxPixels) add(budget, label);
  add(maxPixels, "largest");
  return sizes.sort((a, b) => a.width * a.height - b.width * b.height);
}
