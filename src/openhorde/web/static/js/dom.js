// Tiny helpers for building the DOM without a framework.

// h("div.card", {onclick, "data-testid": "x"}, child, "text", ...) → an element.
export function h(tag, attributes = {}, ...children) {
  const [name, ...classes] = tag.split(".");
  const element = document.createElement(name || "div");
  if (classes.length) element.className = classes.join(" ");
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") element.addEventListener(key.slice(2), value);
    else if (key === "value") element.value = value;
    else if (key === "checked") element.checked = Boolean(value);
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function formatSeconds(seconds) {
  if (seconds === undefined || seconds === null) return "–";
  const total = Math.round(seconds); // rounded first: 119.6 s is "2 min 0 s", never "1 min 60 s"
  if (total < 60) return `${total} s`;
  return `${Math.floor(total / 60)} min ${total % 60} s`;
}

export function formatKudos(value) {
  return Number(value || 0).toLocaleString(undefined, { maximumFractionDigits: 2 });
}

export function formatDate(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleString();
}

// Runs `load` now and then every `intervalMs` until the returned function is called; a page returns that
// function to the router, which calls it when the user leaves. While a load is still waiting for the server
// the next tick is skipped rather than piling up requests. A failed load shows `errorText(error)` in
// `errorLine` and the next load that succeeds hides it again. Resolves once the first load has finished.
export async function poll(load, intervalMs, { errorLine, errorText }) {
  let loading = false;
  async function tick() {
    if (loading) return;
    loading = true;
    try {
      await load();
      errorLine.hidden = true;
    } catch (error) {
      errorLine.textContent = errorText(error);
      errorLine.hidden = false;
    } finally {
      loading = false;
    }
  }
  await tick();
  const timer = setInterval(tick, intervalMs);
  return () => clearInterval(timer);
}

// Two significant digits for small figures (a CPU worker does a few hundredths of a megapixelstep a second).
export function megapixels(value) {
  const m = value / 1_000_000;
  if (m >= 10) return m.toFixed(0);
  if (m >= 0.1) return m.toFixed(1);
  return m.toPrecision(2);
}

// Waiting work, given in pixel-steps (width × height × steps, summed) as /status/models' `queued` is: in
// megapixelsteps (MPS), the AI Horde's unit. One 128×128 image of 20 steps is 0.33 MPS.
export function formatWork(pixelSteps) {
  if (!pixelSteps) return "none";
  return `${megapixels(pixelSteps)} MPS`;
}

// A speed in pixel-steps per second (/status/models' `performance`) as megapixelsteps per second.
export function formatPixelSpeed(pixelStepsPerSecond) {
  if (!pixelStepsPerSecond) return "–";
  return `${megapixels(pixelStepsPerSecond)} MPS/s`;
}
