// My workers: the signed-in user's workers with their record, and switches for pause and maintenance.
// Anonymous visitors (and owners without a worker yet) get the few steps to start one.

import { h, formatKudos } from "../dom.js";
import { copyText } from "./account.js";
import { capabilityChips, formatDuration, formatSpeed, stateBadges } from "./workers.js";

const REFRESH_MS = 10_000;

function workerCommand(key) {
  return `openhorde worker --url ${location.origin} --api-key ${key} --name my-worker`;
}

function howTo(app) {
  const signedIn = Boolean(app.user);
  return h(
    "section.card.howto",
    { "data-testid": "run-worker-howto" },
    h("h2", {}, "Run a worker"),
    h("p", {}, "A worker lends a machine's GPU (or CPU) to this horde: it takes jobs, generates the images and earns kudos for your account, which move your own requests up the queue."),
    h(
      "ol",
      {},
      h("li", {}, signedIn ? "You have an account: its API key is the worker's key." : h("span", {}, h("a", { href: "#/account" }, "Create an account or sign in"), " to get an API key.")),
      h("li", {}, "Install OpenHorde on the machine that will do the work (see the project's README)."),
      h("li", {}, "Start the worker with your key:"),
    ),
    h("pre.command", { "data-testid": "run-worker-command" }, workerCommand("YOUR_API_KEY")),
    signedIn
      ? h(
          "div.actions",
          {},
          h(
            "button",
            {
              type: "button",
              "data-testid": "copy-worker-command",
              onclick: async () => {
                const ok = await copyText(workerCommand(app.apiKey));
                app.toast(ok ? "Command with your API key copied." : "This browser would not copy: type the command by hand.", ok ? "ok" : "error");
              },
            },
            "Copy the command with my key",
          ),
        )
      : null,
    h(
      "p.muted.small",
      {},
      "Without --model it serves the built-in demo model openhorde-tiny; add --model NAME --catalogue FILE for real checkpoints. The worker shows up here as soon as it asks for its first job.",
    ),
  );
}

function stat(label, value, testid) {
  return h("div.stat", {}, h("span.stat-label", {}, label), h("span.stat-value", { "data-testid": testid }, value));
}

export async function render(root, app) {
  const cards = new Map(); // worker id → {element, busy}
  const drafts = new Map(); // worker id → the maintenance message being typed, kept across refreshes
  const problems = new Map(); // worker id → the API's message for the last change that failed, until the next one
  const list = h("div.my-workers", { "data-testid": "my-workers-list" });
  const summary = h("p.muted", { "data-testid": "my-workers-summary" });
  const errorLine = h("p.error", { "data-testid": "my-workers-error", hidden: true });

  async function change(worker, body, slot) {
    const entry = cards.get(worker.id);
    entry.busy = true;
    for (const input of entry.element.querySelectorAll("input, button")) input.disabled = true;
    problems.delete(worker.id);
    try {
      await app.api(`/workers/${encodeURIComponent(worker.id)}`, { method: "PUT", body });
      const fresh = await app.api(`/workers/${encodeURIComponent(worker.id)}`);
      entry.busy = false;
      place(fresh, slot);
      const what = "paused" in body ? (body.paused ? "paused" : "resumed") : body.maintenance ? "in maintenance" : "out of maintenance";
      app.toast(`${worker.name} is ${what}.`, "ok");
    } catch (error) {
      entry.busy = false;
      problems.set(worker.id, error.message);
      place(worker, slot);
    }
  }

  // Builds (or rebuilds) one worker's card, with the API's message if its last change failed.
  function card(worker) {
    const problem = problems.get(worker.id);
    const paused = h("input", { type: "checkbox", checked: worker.paused, "data-testid": "toggle-paused" });
    const maintenance = h("input", { type: "checkbox", checked: worker.maintenance_mode, "data-testid": "toggle-maintenance" });
    const message = h("input", {
      type: "text",
      maxlength: 1000,
      placeholder: "Reason (optional)",
      "aria-label": "Maintenance message",
      "data-testid": "maintenance-msg",
      value: drafts.get(worker.id) || "",
      disabled: worker.maintenance_mode,
    });
    message.addEventListener("input", () => drafts.set(worker.id, message.value));
    const element = h(
      "article.card.worker-card",
      { "data-testid": "my-worker", "data-worker": worker.name, "data-worker-id": worker.id },
      h("div.card-head", {}, h("h2", { "data-testid": "worker-name" }, worker.name), stateBadges(worker)),
      h("p.muted.small.mono", {}, worker.id),
      worker.info ? h("p", {}, worker.info) : null,
      h(
        "div.stats",
        {},
        stat("Kudos earned", formatKudos(worker.kudos_rewards), "worker-kudos"),
        stat("Jobs done", String(worker.requests_fulfilled), "worker-requests"),
        stat("Speed", formatSpeed(worker.performance), "worker-speed"),
        stat("Uptime", formatDuration(worker.uptime), "worker-uptime"),
        stat("Unfinished jobs", String(worker.uncompleted_jobs), "worker-uncompleted"),
        stat("Megapixelsteps", String(worker.megapixelsteps_generated), "worker-mps"),
      ),
      h("p.small", {}, h("span.muted", {}, "Models: "), h("span", { "data-testid": "worker-models" }, worker.models.length ? worker.models.join(", ") : "none")),
      capabilityChips(worker),
      h(
        "div.switches",
        {},
        h(
          "div.switch-row",
          {},
          h("label.check", {}, paused, "Paused"),
          h(
            "span.muted.small",
            {},
            app.user && app.user.moderator
              ? "A paused worker gets no new jobs and counts for no model until resumed."
              : "Pausing is for moderators, as on the AI Horde; to stop new jobs, use maintenance.",
          ),
        ),
        h(
          "div.switch-row",
          {},
          h("label.check", {}, maintenance, "Maintenance"),
          message,
        ),
      ),
      problem ? h("p.error", { "data-testid": "worker-error", role: "alert" }, problem) : null,
      worker.bridge_agent ? h("p.muted.small.agent", {}, `Software: ${worker.bridge_agent}`) : null,
    );
    paused.addEventListener("change", () => change(worker, { paused: paused.checked }, element));
    maintenance.addEventListener("change", () => {
      const body = { maintenance: maintenance.checked };
      const why = message.value.trim();
      if (maintenance.checked && why) body.maintenance_msg = why;
      change(worker, body, element);
    });
    return element;
  }

  // Puts a worker's card in place of `slot` (or appends it) and remembers it.
  function place(worker, slot) {
    const element = card(worker);
    if (slot && slot.isConnected) slot.replaceWith(element);
    else list.append(element);
    cards.set(worker.id, { element, busy: false });
  }

  async function load() {
    await app.refreshUser();
    if (!app.user) {
      root.replaceChildren(h("h1.page-title", {}, "My workers"), howTo(app));
      return;
    }
    const ids = app.user.worker_ids || [];
    summary.textContent = ids.length ? `${ids.length} worker${ids.length === 1 ? "" : "s"} on ${app.user.username}` : "";
    if (!ids.length) {
      list.replaceChildren(h("section.card.empty", { "data-testid": "my-workers-empty" }, h("h2", {}, "No workers yet"), h("p", {}, "None of this horde's workers runs with your API key yet.")), howTo(app));
      cards.clear();
      return;
    }
    const results = await Promise.allSettled(ids.map((id) => app.api(`/workers/${encodeURIComponent(id)}`)));
    const failures = [];
    if (!cards.size) list.replaceChildren();
    results.forEach((result, index) => {
      const id = ids[index];
      if (result.status === "rejected") {
        failures.push(result.reason.message);
        return;
      }
      const entry = cards.get(id);
      if (!entry) return place(result.value);
      // Leave a card alone while the owner works in it: a switch in flight, or typing a message.
      if (entry.busy || entry.element.contains(document.activeElement)) return;
      place(result.value, entry.element);
    });
    for (const [id, entry] of cards) {
      if (!ids.includes(id)) {
        entry.element.remove();
        cards.delete(id);
      }
    }
    errorLine.textContent = failures.length ? `Could not load ${failures.length} worker(s): ${failures[0]}` : "";
    errorLine.hidden = !failures.length;
  }

  root.append(
    h(
      "section.card",
      {},
      h("div.page-head", {}, h("h1", {}, "My workers"), summary),
      h("p.muted", {}, "Your workers' record. Maintenance keeps a worker from taking new jobs until you switch it back (its jobs in hand still finish); moderators can also pause workers."),
      errorLine,
    ),
    list,
  );
  try {
    await load();
  } catch (error) {
    errorLine.textContent = error.message;
    errorLine.hidden = false;
  }
  let loading = false;
  const timer = setInterval(async () => {
    if (loading) return;
    loading = true;
    try {
      await load();
    } catch (error) {
      errorLine.textContent = error.message;
      errorLine.hidden = false;
    } finally {
      loading = false;
    }
  }, REFRESH_MS);
  return () => clearInterval(timer);
}
