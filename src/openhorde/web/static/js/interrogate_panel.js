// "Interrogate" in the image viewer: ask the horde's alchemists for a caption, ranked terms and/or an NSFW
// verdict on the image shown, and show the answers once they come (POST /interrogate/async, then polling
// GET /interrogate/status/{id}).
//
// The browser sends the image itself (base64), not its URL: the server refuses to fetch loopback and private
// addresses, which is where a household horde's own images live. An image the browser cannot read (another
// host without CORS) goes by URL, for the server to fetch.

import { api } from "./api.js";
import { h } from "./dom.js";

const FORMS = [
  ["caption", "Caption"],
  ["interrogation", "Tags and style"],
  ["nsfw", "NSFW check"],
];
const ENDED = new Set(["done", "faulted", "partial", "cancelled"]);
const POLL_MS = 2000;
const TERMS_SHOWN = 3;

export function interrogatePanel(url) {
  const boxes = FORMS.map(([name, label]) =>
    h("label.check", {}, h("input", { type: "checkbox", value: name, checked: name === "caption", "data-testid": `interrogate-form-${name}` }), ` ${label}`),
  );
  const status = h("p.muted", { "data-testid": "interrogate-status", "aria-live": "polite" });
  const results = h("dl.settings-list", { "data-testid": "interrogate-results" });
  const ask = h("button", { type: "button", "data-testid": "interrogate-submit" }, "Ask");
  const panel = h(
    "details.interrogate-panel",
    { "data-testid": "interrogate-panel" },
    h("summary", { "data-testid": "interrogate-toggle" }, "Interrogate"),
    h("fieldset", {}, h("legend.visually-hidden", {}, "What to ask"), boxes),
    ask,
    status,
    results,
  );

  ask.addEventListener("click", async () => {
    const forms = boxes.map((box) => box.querySelector("input")).filter((input) => input.checked).map((input) => input.value);
    if (!forms.length) {
      status.textContent = "Tick at least one thing to ask.";
      return;
    }
    ask.disabled = true;
    results.replaceChildren();
    status.textContent = "Sending…";
    try {
      const body = { forms: forms.map((name) => ({ name })), source_image: await imageSource(url) };
      const queued = await api("/interrogate/async", { method: "POST", body });
      await follow(queued.id);
    } catch (error) {
      status.textContent = `Could not interrogate: ${error.message}`;
    } finally {
      ask.disabled = false;
    }
  });

  // Polls until the interrogation ends, or the viewer that holds the panel closes (it then leaves the page).
  async function follow(id) {
    for (;;) {
      const answer = await api(`/interrogate/status/${encodeURIComponent(id)}`);
      const done = answer.forms.filter((form) => form.state === "done").length;
      status.textContent = ENDED.has(answer.state) ? `Interrogation ${answer.state}.` : `Waiting for an alchemist… (${done} of ${answer.forms.length} done)`;
      results.replaceChildren(...answer.forms.flatMap(resultRows));
      if (ENDED.has(answer.state) || !panel.isConnected) return;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  return panel;
}

async function imageSource(url) {
  try {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const blob = await response.blob();
    const dataUrl = await new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(blob);
    });
    return String(dataUrl).split(",", 2)[1];
  } catch {
    return new URL(url, location.href).href;
  }
}

function resultRows(form) {
  const label = (FORMS.find(([name]) => name === form.form) || [form.form, form.form])[1];
  const value = form.result ? form.result[form.form] : null;
  if (form.state !== "done" || value === undefined || value === null) return [h("dt", {}, label), h("dd", {}, form.state)];
  if (form.form === "nsfw") return [h("dt", {}, label), h("dd", { "data-testid": "interrogate-nsfw" }, value ? "looks NSFW" : "looks safe")];
  if (form.form === "interrogation") {
    return Object.entries(value).flatMap(([category, items]) => [
      h("dt", {}, category),
      h("dd", { "data-testid": `interrogate-${category}` }, (items || []).slice(0, TERMS_SHOWN).map((item) => `${item.text} (${Number(item.confidence).toFixed(1)})`).join(", ")),
    ]);
  }
  return [h("dt", {}, label), h("dd", { "data-testid": `interrogate-${form.form}` }, String(value))];
}
