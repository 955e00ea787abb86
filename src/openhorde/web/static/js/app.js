// The single-page app: a hash router that renders one page module at a time into <main id="view">.
//
// A page module (js/pages/<name>.js) exports `render(root, app)`; it may return a function that the router
// calls when the user leaves the page (to stop polling timers).

import { api, storedKey, storeKey, ApiError } from "./api.js";
import { h, formatKudos } from "./dom.js";

const PAGES = {
  generate: () => import("./pages/generate.js"),
  gallery: () => import("./pages/gallery.js"),
  models: () => import("./pages/models.js"),
  workers: () => import("./pages/workers.js"),
  "my-workers": () => import("./pages/my_workers.js"),
  account: () => import("./pages/account.js"),
};
const DEFAULT_PAGE = "generate";

// Shared state and services handed to every page.
export const app = {
  api,
  user: null, // the /find_user answer for the stored key, or null when anonymous
  // Data a page hands to the next one (e.g. the gallery's "re-run" hands settings to the generate page).
  handoff: null,

  get apiKey() {
    return storedKey();
  },

  async signIn(key) {
    const user = await api("/find_user", { key });
    storeKey(key);
    app.user = user;
    renderWhoAmI();
    return user;
  },

  signOut() {
    storeKey("");
    app.user = null;
    renderWhoAmI();
  },

  async refreshUser() {
    if (!storedKey()) {
      app.user = null;
    } else {
      try {
        app.user = await api("/find_user");
      } catch (error) {
        app.user = null;
        if (error instanceof ApiError && error.status === 401) {
          toast("The saved API key is not valid on this server any more; signed out.", "error");
          storeKey("");
        }
      }
    }
    renderWhoAmI();
    return app.user;
  },

  navigate(page, handoff = null) {
    app.handoff = handoff;
    if (location.hash === `#/${page}`) route();
    else location.hash = `#/${page}`;
  },

  toast,
};

export function toast(message, kind = "info") {
  const box = document.querySelector(".toasts");
  const note = h(`div.toast.${kind}`, { role: kind === "error" ? "alert" : "status", "data-testid": `toast-${kind}` }, message);
  box.append(note);
  setTimeout(() => note.remove(), kind === "error" ? 9000 : 4000);
}

function renderWhoAmI() {
  const slot = document.querySelector(".whoami");
  // The same figure as the account page shows (a rounded-down one looked like a different balance).
  slot.textContent = app.user ? `${app.user.username} · ${formatKudos(app.user.kudos)} kudos` : "anonymous";
}

let leavePage = null;

async function route() {
  const name = location.hash.replace(/^#\/?/, "").split("?")[0] || DEFAULT_PAGE;
  const load = PAGES[name] || PAGES[DEFAULT_PAGE];
  if (leavePage) {
    leavePage();
    leavePage = null;
  }
  for (const link of document.querySelectorAll(".nav a")) {
    link.classList.toggle("active", link.dataset.page === name);
  }
  document.querySelector(".nav").classList.remove("open");
  const root = document.getElementById("view");
  root.replaceChildren(h("p.muted", {}, "Loading…"));
  try {
    const page = await load();
    root.replaceChildren();
    root.dataset.page = name;
    leavePage = (await page.render(root, app)) || null;
  } catch (error) {
    root.replaceChildren(h("p.error", { "data-testid": "page-error" }, `This page failed to load: ${error.message}`));
  }
}

function setUpMenu() {
  const toggle = document.querySelector(".menu-toggle");
  toggle.addEventListener("click", () => {
    const nav = document.querySelector(".nav");
    nav.classList.toggle("open");
    toggle.setAttribute("aria-expanded", String(nav.classList.contains("open")));
  });
}

window.addEventListener("hashchange", route);
setUpMenu();
await app.refreshUser();
await route();
