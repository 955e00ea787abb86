// Account: sign in with an API key or register a new account; the balance, roles, usage, kudos transfers and the
// kudos history from the ledger. (About 400 lines: its views share one page's state, so they stay together.)

import { h, formatDate, formatKudos } from "../dom.js";
import { ApiError } from "../api.js";
import { formatDuration } from "./workers.js";

const ROLES = ["admin", "moderator", "trusted", "customizer", "education", "service", "special", "vpn", "flagged", "deleted"];

// The clipboard API needs a secure context (https or localhost); elsewhere fall back to a hidden selection.
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // fall through to the selection route
    }
  }
  const area = h("textarea", { readonly: true, style: "position:fixed;opacity:0;top:0;left:0" });
  area.value = text;
  document.body.append(area);
  area.select();
  let copied = false;
  try {
    copied = document.execCommand("copy");
  } catch {
    copied = false;
  }
  area.remove();
  return copied;
}

function copyButton(text, app, testid, what = "Copied") {
  return h(
    "button",
    {
      type: "button",
      "data-testid": testid,
      onclick: async () => {
        if (await copyText(text)) app.toast(`${what} to the clipboard.`, "ok");
        else app.toast("This browser would not copy: select the text and copy it by hand.", "error");
      },
    },
    "Copy",
  );
}

// Ledger kinds in a user's words; the sign tells which side of the movement this account was on.
function describe(entry) {
  const incoming = entry.amount >= 0;
  switch (entry.kind) {
    case "transfer":
      return incoming ? "Transfer received" : "Transfer sent";
    case "generation":
      return incoming ? "Earned by a worker" : "Spent on images";
    case "award":
      return "Award";
    case "admin":
      return "Adjusted by an admin";
    default:
      return entry.kind;
  }
}

function signedKudos(amount) {
  const text = formatKudos(Math.abs(amount));
  return amount < 0 ? `−${text}` : `+${text}`;
}

function fieldWith(label, input, hint) {
  return h("div.field", {}, h("label", { for: input.id }, label), input, hint ? h("p.muted.small.hint", {}, hint) : null);
}

// ---------------------------------------------------------------- signed out: sign in or register

function signedOutView(app, onNewKey) {
  const keyInput = h("input", { id: "signin-key", type: "password", autocomplete: "off", spellcheck: "false", placeholder: "Your API key", "data-testid": "signin-key" });
  const signInError = h("p.error", { "data-testid": "signin-error", role: "alert", hidden: true });
  const signInButton = h("button.primary", { type: "submit", "data-testid": "signin-submit" }, "Sign in");
  const signInForm = h(
    "form.card",
    { "data-testid": "signin-form" },
    h("h2", {}, "Sign in"),
    h("p.muted", {}, "Paste the API key of your account. It stays in this browser only."),
    fieldWith("API key", keyInput),
    signInError,
    h("div.actions", {}, signInButton),
  );
  signInForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    signInError.hidden = true;
    if (!key) {
      signInError.textContent = "Paste your API key first.";
      signInError.hidden = false;
      return;
    }
    signInButton.disabled = true;
    try {
      const user = await app.signIn(key);
      app.toast(`Signed in as ${user.username}.`, "ok");
      onNewKey(null);
    } catch (error) {
      signInError.textContent = error instanceof ApiError && error.status === 401 ? `Sign-in failed: ${error.message}` : error.message;
      signInError.hidden = false;
      signInButton.disabled = false;
    }
  });

  const nameInput = h("input", { id: "register-name", type: "text", autocomplete: "username", maxlength: 30, placeholder: "e.g. alice", "data-testid": "register-username" });
  const registerError = h("p.error", { "data-testid": "register-error", role: "alert", hidden: true });
  const registerButton = h("button.primary", { type: "submit", "data-testid": "register-submit" }, "Create account");
  const registerForm = h(
    "form.card",
    { "data-testid": "register-form" },
    h("h2", {}, "Create an account"),
    h("p.muted", {}, "An account collects kudos (from your workers, or sent by others), which move your requests up the queue. Anonymous use works too, at the lowest priority."),
    fieldWith("Username", nameInput, "Your name is shown with a number, e.g. alice#12; others send you kudos by that name."),
    registerError,
    h("div.actions", {}, registerButton),
  );
  registerForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    registerError.hidden = true;
    registerButton.disabled = true;
    let created;
    try {
      created = await app.api("/register", { method: "POST", body: { username: nameInput.value.trim() }, auth: false });
    } catch (error) {
      registerError.textContent = error.message;
      registerError.hidden = false;
      registerButton.disabled = false;
      return;
    }
    // The key exists from here on: show it even if signing in with it fails.
    try {
      await app.signIn(created.apikey);
    } catch (error) {
      app.toast(`Signing in with the new key failed: ${error.message}`, "error");
    }
    onNewKey(created);
  });

  return h("div.grid-2.account-grid", {}, signInForm, registerForm);
}

// ---------------------------------------------------------------- signed in

function newKeyBanner(created, app, dismiss) {
  return h(
    "section.card.key-banner",
    { "data-testid": "new-key-banner" },
    h("h2", {}, `Welcome, ${created.username}!`),
    h("p", {}, h("strong", {}, "This is your API key. It is shown only this once: "), "save it somewhere safe (a password manager). You need it to sign in elsewhere and to run a worker; nobody can show it to you again."),
    h("div.key-line", {}, h("code.apikey", { "data-testid": "new-apikey" }, created.apikey), copyButton(created.apikey, app, "copy-new-apikey", "API key copied")),
    h("div.actions", {}, h("button", { type: "button", "data-testid": "dismiss-new-key", onclick: dismiss }, "I have saved it")),
  );
}

function summaryCard(user, app, onSignOut) {
  const roles = ROLES.filter((role) => user[role]);
  let revealed = false;
  const keyText = h("code.apikey.masked", { "data-testid": "current-apikey" });
  const maskKey = () => {
    const key = app.apiKey;
    keyText.textContent = revealed ? key : `${"•".repeat(Math.max(0, key.length - 4))}${key.slice(-4)}`;
  };
  maskKey();
  const showButton = h("button", { type: "button", "data-testid": "toggle-apikey" }, "Show");
  showButton.addEventListener("click", () => {
    revealed = !revealed;
    showButton.textContent = revealed ? "Hide" : "Show";
    maskKey();
  });
  const stat = (label, value, testid) => h("div.stat", {}, h("span.stat-label", {}, label), h("span.stat-value", { "data-testid": testid }, value));
  return h(
    "section.card",
    { "data-testid": "account-summary" },
    h("div.card-head", {}, h("h1", { "data-testid": "account-username" }, user.username), h("button", { type: "button", "data-testid": "signout", onclick: onSignOut }, "Sign out")),
    h("div.balance", {}, h("span.balance-value", { "data-testid": "kudos-balance" }, formatKudos(user.kudos)), h("span.muted", {}, " kudos")),
    h(
      "div.badges.roles",
      { "data-testid": "account-roles" },
      roles.length ? roles.map((role) => h(`span.badge.role.${role}`, { "data-role": role }, role)) : h("span.muted.small", {}, "No special roles (an ordinary account)"),
    ),
    h(
      "div.stats",
      {},
      stat("Account id", String(user.id), "account-id"),
      // The tier (an OpenHorde extension of find_user): free, credits, or supporter with its end date.
      user.tier && stat("Tier", user.tier === "supporter" && user.supporter_until ? `supporter until ${new Date(user.supporter_until * 1000).toLocaleDateString()}` : user.tier, "account-tier"),
      stat("Account age", formatDuration(user.account_age), "account-age"),
      stat("Concurrency", String(user.concurrency), "account-concurrency"),
      stat("Workers", String(user.worker_count), "account-workers"),
    ),
    h("h3", {}, "API key"),
    h("div.key-line", {}, keyText, showButton, copyButton(app.apiKey, app, "copy-apikey", "API key copied")),
  );
}

// Usage, contributions and where the kudos came from, as three short lists.
function activityCard(user) {
  const line = (label, value, testid) => h("div.line", {}, h("dt", {}, label), h("dd", { "data-testid": testid }, value));
  const details = user.kudos_details || {};
  return h(
    "section.card",
    { "data-testid": "account-activity" },
    h("h2", {}, "Activity"),
    h(
      "div.activity",
      {},
      h(
        "dl",
        { "data-testid": "account-usage" },
        h("h3", {}, "Requested"),
        line("Images", String(user.usage?.requests ?? 0), "usage-requests"),
        line("Megapixelsteps", formatKudos(user.usage?.megapixelsteps ?? 0), "usage-mps"),
      ),
      h(
        "dl",
        { "data-testid": "account-contributions" },
        h("h3", {}, "Generated by your workers"),
        line("Images", String(user.contributions?.fulfillments ?? 0), "contrib-fulfillments"),
        line("Megapixelsteps", formatKudos(user.contributions?.megapixelsteps ?? 0), "contrib-mps"),
      ),
      h(
        "dl",
        { "data-testid": "account-kudos-details" },
        h("h3", {}, "Kudos by source"),
        line("Images (earned − spent)", formatKudos(details.accumulated), "kudos-accumulated"),
        line("Received", formatKudos(details.received), "kudos-received"),
        line("Given away", formatKudos(details.gifted), "kudos-gifted"),
        line("Awarded", formatKudos(details.awarded), "kudos-awarded"),
        line("By admins", formatKudos(details.admin), "kudos-admin"),
      ),
    ),
  );
}

function transferCard(app, onDone) {
  const toInput = h("input", { id: "transfer-to", type: "text", autocomplete: "off", placeholder: "alice#12", "data-testid": "transfer-username" });
  const amountInput = h("input", { id: "transfer-amount", type: "number", min: 1, step: 1, inputmode: "numeric", placeholder: "100", "data-testid": "transfer-amount" });
  const errorLine = h("p.error", { "data-testid": "transfer-error", role: "alert", hidden: true });
  const button = h("button.primary", { type: "submit", "data-testid": "transfer-submit" }, "Send kudos");
  const form = h(
    "form.card",
    { "data-testid": "transfer-form" },
    h("h2", {}, "Send kudos"),
    h("p.muted", {}, "Give kudos to another account, e.g. a friend who has none yet. Transfers cannot be undone."),
    h("div.row", {}, fieldWith("To (username with its number)", toInput), fieldWith("Amount", amountInput)),
    errorLine,
    h("div.actions", {}, button),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorLine.hidden = true;
    const username = toInput.value.trim();
    const amount = Number(amountInput.value);
    if (!username || !Number.isInteger(amount) || amount <= 0) {
      errorLine.textContent = "Enter the recipient's username (e.g. alice#12) and a whole number of kudos above 0.";
      errorLine.hidden = false;
      return;
    }
    button.disabled = true;
    try {
      const answer = await app.api("/kudos/transfer", { method: "POST", body: { username, amount } });
      app.toast(`Sent ${formatKudos(answer.transferred)} kudos to ${username}.`, "ok");
      amountInput.value = "";
      await onDone();
    } catch (error) {
      errorLine.textContent = error.message;
      errorLine.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

// Transfer and award memos name accounts by id ("3->7:100", "award by 3"): show their usernames instead.
function memoLine(entry, app, names) {
  const line = h("div.muted.small", { "data-testid": "history-memo" }, entry.memo);
  let other = null;
  let words = "";
  const transfer = /^(\d+)->(\d+):/.exec(entry.memo || "");
  const award = /^award by (\d+)$/.exec(entry.memo || "");
  if (entry.kind === "transfer" && transfer) {
    other = entry.amount < 0 ? transfer[2] : transfer[1];
    words = entry.amount < 0 ? "to" : "from";
  } else if (entry.kind === "award" && award) {
    other = award[1];
    words = "by";
  }
  if (other === null) return entry.memo ? line : null;
  line.textContent = `${words} account #${other}`;
  if (!names.has(other)) names.set(other, app.api(`/users/${other}`, { auth: false }).then((u) => u.username, () => null));
  names.get(other).then((name) => {
    if (name) line.textContent = `${words} ${name}`;
  });
  return line;
}

function historyCard(app) {
  const names = new Map(); // account id → Promise of its username
  const body = h("div", { "data-testid": "history-body" }, h("p.muted", {}, "Loading…"));
  const pager = h("div.pager", { "data-testid": "history-pager" });
  const card = h("section.card", { "data-testid": "history" }, h("h2", {}, "Kudos history"), body, pager);
  let page = 1;
  let latest = 0; // only the last load asked for may draw (a transfer's reload can overtake the first one)

  async function load(wanted = page) {
    const mine = ++latest;
    let answer;
    try {
      answer = await app.api(`/kudos/history?page=${wanted}`);
      if (mine !== latest) return;
    } catch (error) {
      if (mine !== latest) return;
      pager.replaceChildren();
      const why = error instanceof ApiError && error.status === 404 ? "This server does not keep a kudos history." : `Could not load the history: ${error.message}`;
      body.replaceChildren(h("p.error", { "data-testid": "history-error" }, why));
      return;
    }
    page = answer.page;
    if (!answer.entries.length) {
      body.replaceChildren(h("p.muted", { "data-testid": "history-empty" }, "No kudos have moved on this account yet."));
      pager.replaceChildren();
      return;
    }
    const row = (entry) =>
      h(
        "tr",
        { "data-testid": "history-row", "data-kind": entry.kind },
        h("td", { "data-label": "When" }, formatDate(entry.created_at)),
        h("td", { "data-label": "What" }, h("div.cell", {}, h("span", { "data-testid": "history-what" }, describe(entry)), memoLine(entry, app, names))),
        h("td.num", { "data-label": "Kudos" }, h(`span.${entry.amount < 0 ? "error" : "ok"}`, { "data-testid": "history-amount" }, signedKudos(entry.amount))),
      );
    body.replaceChildren(
      h(
        "div.table-wrap",
        {},
        h(
          "table.table-cards",
          { "data-testid": "history-table" },
          h("thead", {}, h("tr", {}, h("th", {}, "When"), h("th", {}, "What"), h("th.num", {}, "Kudos"))),
          h("tbody", {}, answer.entries.map(row)),
        ),
      ),
    );
    const count = `${answer.total} entr${answer.total === 1 ? "y" : "ies"}`;
    if (answer.pages <= 1) {
      pager.replaceChildren(h("span.muted", { "data-testid": "history-page" }, count));
      return;
    }
    pager.replaceChildren(
      h("button", { type: "button", "data-testid": "history-prev", disabled: page <= 1, onclick: () => load(page - 1) }, "← Newer"),
      h("span.muted", { "data-testid": "history-page" }, `Page ${answer.page} of ${answer.pages} · ${count}`),
      h("button", { type: "button", "data-testid": "history-next", disabled: page >= answer.pages, onclick: () => load(page + 1) }, "Older →"),
    );
  }

  return { card, load };
}

// ---------------------------------------------------------------- the page

export async function render(root, app) {
  let created = null; // the /register answer while its one-time key banner is shown

  const dismissKey = () => {
    created = null;
    draw();
  };

  function draw() {
    root.replaceChildren();
    if (created) root.append(newKeyBanner(created, app, dismissKey));
    if (!app.user) {
      root.append(
        h("h1.page-title", {}, "Account"),
        signedOutView(app, (answer) => {
          created = answer;
          draw();
        }),
      );
      return;
    }
    const history = historyCard(app);
    const refresh = async () => {
      await app.refreshUser();
      if (!app.user) return draw();
      summarySlot.replaceChildren(summaryCard(app.user, app, signOut));
      activitySlot.replaceChildren(activityCard(app.user));
      await history.load(1);
    };
    const signOut = () => {
      app.signOut();
      created = null;
      app.toast("Signed out. Your key is no longer stored in this browser.", "info");
      draw();
    };
    const summarySlot = h("div", {}, summaryCard(app.user, app, signOut));
    const activitySlot = h("div", {}, activityCard(app.user));
    root.append(h("div.grid-2.account-grid", {}, h("div", {}, summarySlot, transferCard(app, refresh)), h("div", {}, activitySlot, history.card)));
    history.load(1);
  }

  // Always asked again on opening: requests finish and workers earn while other pages are shown, and a stale
  // balance above a history that adds up to something else is the first thing people notice.
  if (app.apiKey) await app.refreshUser();
  draw();
}
