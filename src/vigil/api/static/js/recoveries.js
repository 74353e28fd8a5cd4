// Recoveries: open and past, the open alerts, and each recovery's timeline on a time axis.

import { call } from "./api.js";
import { $, actorOf, clock, dateTime, duration, el, esc, parseTime, perFrame } from "./util.js";

const SVG = "http://www.w3.org/2000/svg";
const HOST_LANE = new Set(["detected", "disabled", "forced_down", "evacuated", "re_enabled",
                           "cancelled", "completed"]);
const FENCE_LANE = new Set(["quarantined", "fence_started", "fence_failed", "fenced", "released"]);
const MAX_INSTANCE_LANES = 10;
const STEPS = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400];

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function signature(r) {
  return JSON.stringify([r.phase, r.status, r.updated_at, r.finished_at, r.evacuations_total,
                         r.evacuations_by_status]);
}

function shortId(uuid) { return uuid ? uuid.slice(0, 8) : ""; }

function tickLabel(seconds) {
  if (seconds === 0) return "0";
  if (seconds < 60) return `+${seconds}s`;
  if (seconds < 3600) return `+${Math.round(seconds / 60 * 10) / 10}m`;
  return `+${Math.round(seconds / 3600 * 10) / 10}h`;
}

export class RecoveriesPage {
  constructor(store, can) {
    this.store = store;
    this.can = can;
    this.selected = null;
    this.pinned = false;         // the operator chose one: keep it
    this.fetched = new Map();    // id -> {sig, data} for recoveries the feed carries no timeline of
    this.schedule = perFrame(() => this.render());
    $("rec-list").addEventListener("click", (e) => {
      const item = e.target.closest("[data-recovery]");
      if (!item) return;
      this.selected = Number(item.dataset.recovery);
      this.pinned = true;
      this.render();
    });
    setInterval(() => {   // the "now" line of an open recovery moves
      const r = this.store.recoveries.get(this.selected);
      if (this.visible && r && r.open) this.renderDetail();
    }, 1000);
  }

  update(what) {
    const ch = what.changed;
    if (!("recoveries" in ch) && !("timelines" in ch) && !("ha" in ch)) return;
    this.updateBadge();
    if (this.visible) this.schedule();
  }

  updateBadge() {
    const open = [...this.store.recoveries.values()].filter((r) => r.open).length;
    const alerts = (this.store.ha.alerts || []).length;
    const badge = $("nav-alerts");
    badge.hidden = !(open || alerts);
    badge.textContent = String(open + alerts);
    badge.title = `${open} open recoveries, ${alerts} open alerts`;
  }

  show() { this.visible = true; this.render(); }
  hide() { this.visible = false; }

  ordered() {
    const all = [...this.store.recoveries.values()].sort((a, b) => b.id - a.id);
    return [...all.filter((r) => r.open), ...all.filter((r) => !r.open)];
  }

  render() {
    if (!this.visible) return;
    const denied = !this.store.sections.has("recoveries");
    $("rec-denied").hidden = !denied;
    $("rec-denied").textContent = "This token may not list recoveries (policy vigil:recoveries:list).";
    const leader = this.store.ha.leader;
    $("rec-leader").textContent = denied ? "" : leader
      ? `HA monitor leader: ${leader.holder} (epoch ${leader.epoch})`
      : "No HA monitor leads: recoveries wait for one";
    $("rec-alerts").replaceChildren(...(this.store.ha.alerts || []).map((a) => el("div",
      { class: "alert", "data-alert": a.kind },
      el("b", {}, `ALERT ${a.kind}`), ` since ${dateTime(parseTime(a.raised_at))}: ${a.message}`)));
    const list = this.ordered();
    if (!this.pinned || !this.store.recoveries.has(this.selected)) {
      this.selected = list.length ? list[0].id : null;
    }
    const items = [];
    let group = null;
    for (const r of list) {
      const g = r.open ? "Open" : "Past";
      if (g !== group) { items.push(`<div class="rec-group">${g}</div>`); group = g; }
      const by = r.evacuations_by_status || {};
      items.push(`<div class="rec-item${r.id === this.selected ? " selected" : ""}" data-recovery="${r.id}" data-phase="${esc(r.phase)}" data-status="${esc(r.status)}">` +
        `<div class="line1"><b>#${r.id} ${esc(r.host)}</b><span class="state phase" data-open="${r.open}">${esc(r.phase)}</span></div>` +
        `<div class="muted small">${esc(r.status)} · ${esc(r.trigger)} · ${dateTime(parseTime(r.created_at))} · evacuated ${by.done || 0}/${r.evacuations_total}</div></div>`);
    }
    if (!list.length && !denied) items.push('<p class="muted rec-item">No recovery yet. A compute host that dies is recovered here.</p>');
    $("rec-list").innerHTML = items.join("");
    this.renderDetail();
  }

  /** The selected recovery's events and evacuations: from the feed, or fetched once. */
  details(r) {
    const t = this.store.timelines.get(r.id);
    if (t) return t;
    if (!this.can("vigil:recoveries:show")) return null;
    const sig = signature(r);
    const cached = this.fetched.get(r.id);
    if (cached && cached.sig === sig) return cached.data;
    if (!cached || cached.sig !== sig) {
      this.fetched.set(r.id, { sig, data: cached ? cached.data : null });
      call("GET", `/v2.1/vigil/recoveries/${r.id}`).then((body) => {
        this.fetched.set(r.id, { sig, data: body.recovery });
        if (this.selected === r.id) this.renderDetail();
      }).catch(() => {});
    }
    return cached ? cached.data : null;
  }

  renderDetail() {
    const root = $("rec-detail");
    const r = this.store.recoveries.get(this.selected);
    if (!r) { root.replaceChildren(el("p", { class: "muted" }, "Select a recovery.")); return; }
    const d = this.details(r);
    const head = el("div", { class: "page-head" },
      el("h2", {}, `Recovery #${r.id} of ${r.host}`),
      el("span", { class: "state phase", "data-open": String(r.open) }, r.phase),
      el("span", { class: "muted" }, `${r.status}, ${r.trigger === "manual" ? "requested by an operator" : "detected by the monitor"}`));
    const facts = el("dl", { class: "kv" });
    const add = (k, v) => { if (v !== null && v !== undefined && v !== "") facts.append(el("dt", {}, k), el("dd", {}, String(v))); };
    add("UUID", r.uuid);
    add("Opened", dateTime(parseTime(r.created_at)));
    add("Finished", dateTime(parseTime(r.finished_at)));
    add("Fence", r.fence_agent ? `${r.fence_agent}, ${r.fence_attempts} attempt(s)` : null);
    add("Last error", r.last_error);
    add("Held", r.held_reason);
    add("Evacuations", `${(r.evacuations_by_status || {}).done || 0} done of ${r.evacuations_total}` +
      Object.entries(r.evacuations_by_status || {}).filter(([k]) => k !== "done").map(([k, n]) => `, ${n} ${k}`).join(""));
    const parts = [head, facts];
    if (!d) {
      parts.push(el("p", { class: "muted" }, this.can("vigil:recoveries:show")
        ? "Loading the timeline…" : "This token may not show a recovery's timeline (policy vigil:recoveries:show)."));
    } else {
      parts.push(el("h2", {}, "Timeline"), this.timeline(r, d), el("h2", {}, "Events"), this.eventsTable(d));
      if (d.evacuations && d.evacuations.length) parts.push(el("h2", {}, "Evacuations"), this.evacuationsTable(d));
    }
    root.replaceChildren(...parts);
  }

  eventsTable(d) {
    const t0 = d.events.length ? parseTime(d.events[0].created_at) : 0;
    const table = el("table", { class: "grid events" },
      el("tr", {}, ...["Time", "", "Event", "Instance", "Detail", "Actor"].map((h) => el("th", {}, h))));
    for (const e of d.events) {
      const t = parseTime(e.created_at);
      const who = actorOf(e);
      table.append(el("tr", { "data-kind": e.kind },
        el("td", { class: "nowrap" }, clock(t)), el("td", { class: "muted nowrap" }, `+${duration((t - t0) / 1000)}`),
        el("td", {}, e.kind), el("td", { title: e.instance_uuid || "" }, shortId(e.instance_uuid)),
        el("td", {}, e.detail || ""), el("td", {}, who ? who.actor : "")));
    }
    return table;
  }

  evacuationsTable(d) {
    const table = el("table", { class: "grid" },
      el("tr", {}, ...["Instance", "Status", "Attempts", "Target", "Detail"].map((h) => el("th", {}, h))));
    for (const e of d.evacuations) {
      table.append(el("tr", {}, el("td", { title: e.instance_uuid }, shortId(e.instance_uuid)),
        el("td", {}, e.status), el("td", {}, String(e.attempts)), el("td", {}, e.target_host || ""),
        el("td", {}, e.detail || "")));
    }
    return table;
  }

  timeline(r, d) {
    const wrap = el("div", { class: "timeline" });
    const events = d.events.map((e) => ({ ...e, t: parseTime(e.created_at) }));
    if (!events.length) { wrap.append(el("p", { class: "muted" }, "No event yet.")); return wrap; }
    const instances = [];
    for (const e of events) {
      if (e.instance_uuid && !instances.includes(e.instance_uuid)) instances.push(e.instance_uuid);
    }
    const shown = instances.slice(0, MAX_INSTANCE_LANES);
    const lanes = ["host", "fence", ...shown.map((u) => `vm ${shortId(u)}`)];
    if (instances.length > shown.length) lanes.push(`+${instances.length - shown.length} more`);
    const laneOf = (e) => {
      if (e.instance_uuid) {
        const i = shown.indexOf(e.instance_uuid);
        return i >= 0 ? 2 + i : lanes.length - 1;
      }
      if (FENCE_LANE.has(e.kind)) return 1;
      return 0;
    };
    const now = Date.now();
    const t0 = events[0].t;
    let t1 = Math.max(...events.map((e) => e.t));
    if (r.open) t1 = Math.max(t1, now);
    const span = Math.max((t1 - t0) / 1000, 5);
    const width = Math.max(640, ($("rec-detail").clientWidth || 900) - 36);
    const left = 96, right = 40, top = 26, rowH = 14;
    const x = (t) => left + ((t - t0) / 1000) / span * (width - left - right);
    // Labels go in rows under their lane, each in the first row where it fits: events a few
    // milliseconds apart (the whole workflow, on a fast fence) stay readable.
    const rowEnds = lanes.map(() => []);
    const marks = events.map((e) => {
      const lane = laneOf(e);
      const cx = x(e.t);
      const who = actorOf(e);
      const label = e.kind.replace(/_/g, " ") + (who ? ` (${who.actor})` : "");
      const ends = rowEnds[lane];
      const w = label.length * 6.3;
      const flip = cx - 3 + w > width - 4;          // near the right edge: text ends at the mark
      const from = flip ? cx + 3 - w : cx - 3;
      let row = ends.findIndex((end) => end < from);
      if (row < 0 && ends.length < 8) { row = ends.length; ends.push(-Infinity); }
      if (row >= 0) ends[row] = from + w + 6;
      return { e, lane, cx, who, label, row, flip };
    });
    const laneTop = [];
    let y0 = top + 8;
    lanes.forEach((_, i) => { laneTop.push(y0); y0 += 16 + Math.max(1, rowEnds[i].length) * rowH + 8; });
    const height = y0 + 14;
    const laneY = (i) => laneTop[i] + 6;
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": `Timeline of recovery ${r.id}`, "data-recovery": r.id });
    // axis and ticks
    const step = STEPS.find((s) => span / s <= 8) || 86400;
    const axis = svg("g", { class: "axis" });
    axis.append(svg("line", { x1: left, x2: width - right, y1: top, y2: top }));
    for (let s = 0; s <= span + 1e-9; s += step) {
      const tx = left + s / span * (width - left - right);
      const tick = svg("g", { class: "tick" });
      tick.append(svg("line", { x1: tx, x2: tx, y1: top - 4, y2: height - 16 }),
        svg("text", { x: tx, y: top - 8, "text-anchor": "middle" }, tickLabel(s)));
      axis.append(tick);
    }
    axis.append(svg("text", { x: left, y: height - 2, class: "lane-label" }, `0 = ${dateTime(t0)}`));
    root.append(axis);
    lanes.forEach((name, i) => {
      root.append(svg("line", { class: "lane-line", x1: left, x2: width - right, y1: laneY(i), y2: laneY(i) }),
        svg("text", { class: "lane-label", x: 6, y: laneY(i) + 4 }, name));
    });
    // evacuation bars: requested -> arrived (or still running)
    shown.forEach((uuid, i) => {
      const mine = events.filter((e) => e.instance_uuid === uuid);
      const start = mine.find((e) => e.kind === "evacuation_requested");
      if (!start) return;
      const end = mine.find((e) => e.kind === "instance_evacuated" || e.kind === "evacuation_failed");
      const y = laneY(2 + i);
      const x1 = x(start.t), x2 = end ? x(end.t) : x(r.open ? now : t1);
      root.append(svg("rect", { class: end ? "evac-bar" : "evac-bar open", x: x1, y: y - 5,
        width: Math.max(2, x2 - x1), height: 10, rx: 3 }));
    });
    if (r.open) {
      root.append(svg("line", { class: "now", x1: x(now), x2: x(now), y1: top, y2: height - 16 }));
    }
    for (const m of marks) {
      const y = laneY(m.lane);
      const g = svg("g", { class: m.who && m.who.manual ? "ev manual" : "ev", "data-kind": m.e.kind,
        "data-event": m.e.id });
      g.append(svg("title", {}, `${m.e.kind} at ${clock(m.e.t)} (+${duration((m.e.t - t0) / 1000)})` +
        (m.e.detail ? `\n${m.e.detail}` : "")));
      if (m.row >= 0) {
        const ly = y + 8 + rowH * (m.row + 1) - 3;
        g.append(svg("line", { class: "leader", x1: m.cx, x2: m.cx, y1: y, y2: ly - 9 }),
          svg("text", m.flip ? { x: m.cx + 3, y: ly, "text-anchor": "end" } : { x: m.cx - 3, y: ly }, m.label));
      }
      g.append(svg("circle", { cx: m.cx, cy: y, r: 6 }));
      root.append(g);
    }
    wrap.append(root);
    return wrap;
  }
}
