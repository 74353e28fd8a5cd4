// Small helpers shared by the pages. Nothing here touches the network.

const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Text made safe for an HTML string (every value from the API goes through this). */
export function esc(value) {
  if (value === null || value === undefined) return "";
  return String(value).replace(/[&<>"']/g, (c) => ESC[c]);
}

export const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text nodes). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** API times are UTC without an offset ("2026-05-09T07:35:25.123456"); the feed's end in Z. */
export function parseTime(text) {
  if (!text) return null;
  const t = /[zZ]|[+-]\d\d:\d\d$/.test(text) ? text : `${text}Z`;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? null : ms;
}

export function clock(ms) {
  if (ms === null || ms === undefined) return "";
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0").slice(0, 1);
}

export function dateTime(ms) {
  if (ms === null || ms === undefined) return "";
  const d = new Date(ms);
  return `${d.toLocaleDateString()} ${d.toLocaleTimeString([], { hour12: false })}`;
}

export function duration(seconds) {
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 90) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 5400) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** Run fn at most once per animation frame. */
export function perFrame(fn) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; fn(); });
  };
}

export function toast(message, bad = false) {
  const t = el("div", { class: bad ? "toast bad" : "toast", role: "status" }, message);
  $("toasts").append(t);
  setTimeout(() => t.remove(), bad ? 8000 : 4000);
}

/** The state a compute host's tile shows, most important first. */
export function hostState(svc) {
  if (svc.quarantined) return "quarantined";
  if (svc.maintenance) return "maintenance";
  if (svc.forced_down) return "forced-down";
  if (svc.state === "down") return "down";
  if (svc.state === "unknown") return "unknown";
  if (svc.status === "disabled") return "disabled";
  return "up";
}

export const TILE_STATES = ["up", "down", "unknown", "disabled", "forced-down", "quarantined", "maintenance"];
export const TILE_LABELS = {
  up: "up", down: "down", unknown: "unknown", disabled: "disabled",
  "forced-down": "forced down", quarantined: "quarantined", maintenance: "maintenance",
};

/**
 * Who took a step, from its event: an operator's release ("released from quarantine by
 * alice (project p): why"), an operator's evacuation request ("requested by alice (project p)
 * for compute-2"), or the monitor's own release at the end of the evacuations ("... (by
 * monitor-1)"). {actor, manual} or null.
 */
export function actorOf(e) {
  const d = e.detail || "";
  let m;
  if (e.kind === "released" && (m = /released from quarantine by (.+?): /.exec(d))) return { actor: m[1], manual: true };
  if (e.kind === "detected" && (m = /^requested by (.+?) for /.exec(d))) {
    return m[1] === "an operator" ? { actor: "an operator", manual: true } : { actor: m[1], manual: true };
  }
  if (e.kind === "cancelled" && (m = /released from quarantine by (.+?)(?:[:;,.]|$)/.exec(d))) return { actor: m[1], manual: true };
  if (e.kind === "released" && (m = /\(by (.+?)\)$/.exec(d))) return { actor: m[1], manual: false };
  return null;
}
