// Vigil's dashboard: sign-in, routing between the pages, the live feed.

import { ApiError, permissions, token, whenUnauthorized } from "./api.js";
import { BaremetalPage } from "./baremetal.js";
import { FeedClient } from "./feed.js";
import { FleetPage } from "./fleet.js";
import { HostDrawer } from "./host.js";
import { RecoveriesPage } from "./recoveries.js";
import { ServicesPage } from "./services.js";
import { Store } from "./store.js";
import { $, clock, parseTime } from "./util.js";

const store = new Store();
let perms = null;
const can = (rule) => Boolean(perms && perms.rules && perms.rules[rule]);

let drawer = null;
const openHost = (host) => drawer.open(host);
const pages = {
  fleet: new FleetPage(store, openHost),
  services: new ServicesPage(store, openHost),
  recoveries: new RecoveriesPage(store, can),
  baremetal: new BaremetalPage(store),
};
drawer = new HostDrawer(store, can, (host) => pages.fleet.select(host));

// What tests (and the curious) can read: when the first full render was painted, the feed.
const metrics = { firstRender: null, snapshots: 0, changes: 0, lastChangeAt: null };
window.vigil = { store, metrics, can, fleet: pages.fleet };

store.on((what) => {
  for (const page of Object.values(pages)) page.update(what);
  drawer.update(what);
  if (what.snapshot) metrics.snapshots++; else { metrics.changes++; metrics.lastChangeAt = Date.now(); }
  if (what.snapshot && metrics.firstRender === null) {
    // Two frames: the first lays out and paints what the pages rendered, the second runs after.
    requestAnimationFrame(() => requestAnimationFrame(() => {
      performance.mark("vigil:first-render");
      metrics.firstRender = performance.now();
      document.body.dataset.rendered = "true";
    }));
  }
});

function route() {
  const name = (location.hash.replace(/^#\/?/, "").split("?")[0]) || "fleet";
  const current = pages[name] ? name : "fleet";
  for (const [key, page] of Object.entries(pages)) {
    const section = $(`page-${key}`);
    if (key === current) {
      section.hidden = false;
      page.show();
    } else {
      section.hidden = true;
      page.hide();
    }
  }
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("current", a.dataset.page === current);
  }
  document.body.dataset.page = current;
}

const READ_RULES = ["vigil:services:list", "vigil:hosts:list", "vigil:recoveries:list",
                    "vigil:recoveries:show", "vigil:nodes:list", "vigil:ring:show"];

const STATUS_TEXT = { connecting: "connecting", live: "live", stale: "stale", error: "database unavailable", idle: "" };

const feed = new FeedClient({
  hello: (h) => store.hello(h),
  snapshot: (msg) => {
    performance.mark("vigil:snapshot-parsed");
    store.snapshot(msg);
    performance.mark("vigil:snapshot-rendered");
  },
  change: (msg) => store.change(msg),
  status: (state, detail) => {
    document.body.dataset.feed = state;
    const box = $("feed-status");
    box.hidden = false;
    const asOf = store.at ? ` (data as of ${clock(parseTime(store.at))})` : "";
    box.textContent = STATUS_TEXT[state] + (state === "live" ? "" : asOf);
    box.title = detail || "The live feed from the API";
  },
  denied: () => {
    store.hello({ sections: [], columns: store.columns });
    store.snapshot({ seq: 0, at: null, sections: {} });
    document.body.dataset.feed = "denied";
    $("feed-status").hidden = false;
    $("feed-status").textContent = "no access";
    $("feed-status").title = "This token may read none of the fleet (policy).";
  },
  unauthorized: () => signOut("This token is no longer accepted: sign in again."),
});

function showLogin(message) {
  $("login").hidden = false;
  $("nav").hidden = true;
  for (const key of Object.keys(pages)) $(`page-${key}`).hidden = true;
  $("login-error").hidden = !message;
  $("login-error").textContent = message || "";
  document.body.dataset.page = "login";
  $("token").focus();
}

function signOut(message) {
  feed.stop();
  token.clear();
  perms = null;
  $("who").hidden = true;
  $("logout").hidden = true;
  $("feed-status").hidden = true;
  drawer.close();
  showLogin(message);
}

whenUnauthorized(() => signOut("This token is no longer accepted: sign in again."));

function start() {
  $("login").hidden = true;
  $("nav").hidden = false;
  $("logout").hidden = false;
  const who = $("who");
  who.hidden = false;
  const admin = Object.entries(perms.rules).some(([rule, ok]) => ok && /update|maintenance|release|evacuate/.test(rule));
  who.textContent = `${perms.user_id}${perms.project_id ? ` (${perms.project_id})` : ""} · ${perms.roles.join(", ") || "no role"}${admin ? "" : " · read only"}`;
  document.body.dataset.readonly = String(!admin);
  route();
  // The feed carries the sections whose REST resources this token may read (the same rules
  // as vigil.api.feed.SECTION_RULES); with none of them it would only answer 403.
  if (READ_RULES.some(can)) feed.start(); else feed.h.denied();
}

async function signIn(value) {
  token.set(value);
  try {
    perms = await permissions();
  } catch (err) {
    token.clear();
    const message = err instanceof ApiError && err.status === 401
      ? "This token was refused." : `The API cannot be reached: ${err.message}`;
    showLogin(message);
    return;
  }
  start();
}

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const value = $("token").value.trim();
  $("token").value = "";
  if (value) signIn(value);
});
$("logout").addEventListener("click", () => signOut(""));
window.addEventListener("hashchange", () => { if (perms) route(); });

if (token.get()) signIn(token.get()); else showLogin("");
