// Plain sentences for the API's errors. The API speaks to programs ("Send allow_downgrade=true", validator
// text, another horde's register link); a person needs to know what happened and which control on this page
// changes it. `plain(error)` → {text, field}: `field` is the id of the form control the sentence points at
// (the page may open its fold and focus it), or null.

// Form controls by the API's field names, with the label a person sees.
const FIELDS = {
  prompt: ["prompt", "Prompt"],
  "params.steps": ["steps", "Steps"],
  "params.cfg_scale": ["cfg", "CFG scale"],
  "params.width": ["width", "Width"],
  "params.height": ["height", "Height"],
  "params.n": ["n", "Images"],
  "params.seed": ["seed", "Seed"],
  "params.sampler_name": ["sampler", "Sampler"],
  "params.denoising_strength": ["denoising", "Denoising strength"],
  "params.loras": ["add-lora", "LoRAs"],
  models: ["model", "Model"],
  username: ["register-username", "User name"],
  amount: ["transfer-amount", "Amount"],
};

const DOWNGRADE = "“Shrink it rather than refuse it if it needs kudos upfront” (under Advanced settings)";

// By the API's `rc`: (message, error) → {text, field}.
const BY_CODE = {
  InvalidAPIKey: () => ({
    text: "This API key is not known on this server. Check it for typos, or register on this page to get a key.",
    field: "signin-key",
  }),
  WrongCredentials: () => ({ text: "This API key may not do that.", field: null }),
  KudosUpfront: (message) => {
    const found = /needs (\d[\d,]*(?:\.\d+)?) kudos upfront.*you have (\d[\d,]*(?:\.\d+)?)/.exec(message);
    const kudos = (text) => Number(text.replace(/,/g, "")).toLocaleString(undefined, { maximumFractionDigits: 2 });
    const amounts = found ? ` It needs ${kudos(found[1])} kudos upfront and you have ${kudos(found[2])}.` : "";
    return {
      text:
        `This request is too big to queue without kudos upfront (large images or many steps).${amounts} ` +
        `Tick ${DOWNGRADE} to have it shrunk, or lower Steps or the size.`,
      field: "allow-downgrade",
    };
  },
  MissingPrompt: () => ({ text: "Write a prompt first.", field: "prompt" }),
  InvalidPromptSize: (message) => ({ text: `The prompt is too long. ${noUrls(message)}`, field: "prompt" }),
  TooManySteps: () => ({ text: "Too many steps: lower Steps.", field: "steps" }),
  UnsupportedSampler: () => ({ text: "This sampler is not available here: pick another under Advanced settings.", field: "sampler" }),
  TooManyLoras: () => ({ text: "Too many LoRAs: remove some under Advanced settings.", field: "add-lora" }),
  BadCFGDecimals: () => ({ text: "CFG scale takes at most two decimals.", field: "cfg" }),
  UnexpectedModelName: () => ({ text: "This model is not known on this server: pick one from the Model list.", field: "model" }),
  ModelNotFound: () => ({ text: "This model is not known on this server: pick one from the Model list.", field: "model" }),
  SourceImageSizeExceeded: () => ({ text: "The source image file is too large: use a smaller one.", field: "source-file" }),
  SourceImageResolutionExceeded: () => ({ text: "The source image has too many pixels: use a smaller one.", field: "source-file" }),
  SourceImageUnreadable: () => ({ text: "The source image could not be read: try another file.", field: "source-file" }),
  ControlNetSourceMissing: () => ({ text: "ControlNet needs an image: upload a control image.", field: "control-file" }),
  ControlNetInpaintingMismatch: () => ({ text: "ControlNet does not work with inpainting or outpainting.", field: "control-type" }),
  InpaintingMissingMask: () => ({ text: "Paint the area to repaint on the image first.", field: "mask-brush" }),
  TooManyPrompts: () => ({ text: "You have many images queued already: wait for some to finish, then send again.", field: null }),
  RateLimited: () => ({ text: "Too many requests in a short time: wait a few seconds and try again.", field: null }),
  MaintenanceMode: () => ({ text: "The server is in maintenance and takes no new requests right now.", field: null }),
  NetworkError: () => ({ text: "The server cannot be reached. Check your connection, or whether the server is running.", field: null }),
  AnonForbidden: (message) => ({ text: `${noUrls(message)} Sign in on the Account page.`, field: null }),
  UserNotFound: () => ({ text: "No user of that name or id on this server.", field: null }),
  InvalidUsername: (message) => ({ text: noUrls(message), field: "register-username" }),
  StyleNotFound: () => ({ text: "This style is gone: pick another one.", field: "style" }),
};

// Validator wording → a plain rule for a named control.
const RULES = [
  [/at least (\d+) characters?/, (n) => `needs at least ${n} characters`],
  [/at most (\d+) characters?/, (n) => `takes at most ${n} characters`],
  [/greater than or equal to ([\d.]+)/, (n) => `must be at least ${n}`],
  [/less than or equal to ([\d.]+)/, (n) => `must be at most ${n}`],
  [/greater than ([\d.]+)/, (n) => `must be more than ${n}`],
  [/less than ([\d.]+)/, (n) => `must be less than ${n}`],
  [/multiple of (\d+)/, (n) => `must be a multiple of ${n}`],
  [/valid integer|valid number/, () => "must be a number"],
  [/at most (\d+) items?/, (n) => `takes at most ${n} entries`],
];

function fieldRule(path, why) {
  const [id, label] = FIELDS[path] || FIELDS[path.replace(/\.\d+.*$/, "")] || [null, "One of the settings"];
  for (const [pattern, say] of RULES) {
    const found = pattern.exec(why);
    if (found) return { text: `${label} ${say(found[1])}.`, field: id };
  }
  return { text: `${label} has a value the server does not accept.`, field: id };
}

// The server's message without links (the API's wording may send people to another site).
export function noUrls(message) {
  return String(message || "")
    .replace(/\s*(?:at\s+)?https?:\/\/\S+/g, "")
    .replace(/\s+([?.!,])/g, "$1")
    .trim();
}

// `error`: an ApiError (message, rc, status, errors) or anything thrown. → {text, field}
export function plain(error) {
  const rc = error?.rc;
  if (rc && BY_CODE[rc]) return BY_CODE[rc](error.message || "", error);
  if (error?.errors && Object.keys(error.errors).length) {
    const rules = Object.entries(error.errors).map(([path, why]) => fieldRule(path, String(why)));
    return { text: rules.map((r) => r.text).join(" "), field: rules[0].field };
  }
  if (error?.status === 429) return BY_CODE.RateLimited();
  if (error?.status >= 500) return { text: "The server failed to answer this; try again in a moment.", field: null };
  return { text: noUrls(error?.message || String(error)), field: null };
}

export function plainText(error) {
  return plain(error).text;
}
