// Fleet: counts by state, and one tile per compute host, grouped by availability zone.
//
// A zone of up to DENSE hosts is drawn as buttons with the host's name. A bigger one is one
// canvas of small squares: 10,000 elements cost a few hundred milliseconds to parse, lay out
// and paint, a canvas a few. Its tiles answer clicks and hovers by position; each repaint of a
// tile is announced as a "vigil:tile" event ({host, state}) on the canvas, and
// window.vigil.fleet.tileAt(host) gives a tile's position (the tests use both). The Services
// page is the same fleet as a list, for keyboards and screen readers.

import { $, esc, hostState, perFrame, TILE_LABELS, TILE_STATES } from "./util.js";

const DENSE = 300;   // more hosts than this in a zone: a canvas
const CELL = 13;     // canvas tile pitch (11 px square, 2 px gap)
const SIZE = 11;
// One collator: localeCompare with options builds one per call (seconds over 10,000 hosts).
const collator = new Intl.Collator(undefined, { numeric: true });
const byName = (a, b) => collator.compare(a, b);

class TileMap {
  /** One zone's hosts drawn on a canvas. */
  constructor(canvas, hosts, colours) {
    this.canvas = canvas;
    this.hosts = hosts;              // host names, in order
    this.index = new Map(hosts.map((h, i) => [h, i]));
    this.states = new Array(hosts.length).fill("up");
    this.colours = colours;
    this.selected = null;
  }

  layout(width) {
    const ratio = window.devicePixelRatio || 1;
    this.cols = Math.max(1, Math.floor((width + CELL - SIZE) / CELL));
    const rows = Math.ceil(this.hosts.length / this.cols);
    const w = this.cols * CELL, h = rows * CELL;
    this.canvas.width = Math.round(w * ratio);
    this.canvas.height = Math.round(h * ratio);
    this.canvas.style.width = `${w}px`;
    this.canvas.style.height = `${h}px`;
    this.ctx = this.canvas.getContext("2d");
    this.ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    for (let i = 0; i < this.hosts.length; i++) this.paint(i);
  }

  paint(i) {
    const x = (i % this.cols) * CELL, y = Math.floor(i / this.cols) * CELL;
    const ctx = this.ctx;
    ctx.clearRect(x, y, CELL, CELL);
    ctx.fillStyle = this.colours[this.states[i]];
    ctx.fillRect(x, y, SIZE, SIZE);
    if (this.hosts[i] === this.selected) {
      ctx.strokeStyle = "#1d2633";
      ctx.lineWidth = 2;
      ctx.strokeRect(x + 1, y + 1, SIZE - 2, SIZE - 2);
    }
  }

  set(host, state, announce) {
    const i = this.index.get(host);
    if (i === undefined) return;
    if (this.states[i] === state) return;
    this.states[i] = state;
    this.paint(i);
    if (announce) this.canvas.dispatchEvent(new CustomEvent("vigil:tile", { detail: { host, state } }));
  }

  select(host) {
    const before = this.index.get(this.selected);
    this.selected = host;
    if (before !== undefined) this.paint(before);
    const i = this.index.get(host);
    if (i !== undefined) this.paint(i);
  }

  hostAt(event) {
    const r = this.canvas.getBoundingClientRect();
    const col = Math.floor((event.clientX - r.left) / CELL);
    const row = Math.floor((event.clientY - r.top) / CELL);
    if (col < 0 || col >= this.cols || (event.clientX - r.left) % CELL > SIZE) return null;
    const i = row * this.cols + col;
    return i >= 0 && i < this.hosts.length ? this.hosts[i] : null;
  }

  rectOf(host) {
    const i = this.index.get(host);
    if (i === undefined) return null;
    const r = this.canvas.getBoundingClientRect();
    return { x: r.left + (i % this.cols) * CELL, y: r.top + Math.floor(i / this.cols) * CELL,
             width: SIZE, height: SIZE };
  }
}

export class FleetPage {
  constructor(store, openHost) {
    this.store = store;
    this.openHost = openHost;
    this.tiles = new Map();        // host -> button (small zones)
    this.maps = new Map();         // host -> TileMap (big zones)
    this.zoneOf = new Map();       // host -> zone rendered
    this.dirty = true;
    this.scheduleCounts = perFrame(() => this.renderCounts());
    const zones = $("fleet-zones");
    zones.addEventListener("click", (e) => {
      const tile = e.target.closest("[data-host]");
      if (tile) { this.openHost(tile.dataset.host); return; }
      const map = e.target.tilemap;
      const host = map && map.hostAt(e);
      if (host) this.openHost(host);
    });
    zones.addEventListener("mouseover", (e) => {
      const tile = e.target.closest("[data-host]");
      if (tile && !tile.title) tile.title = this.tooltip(tile.dataset.host);
    });
    zones.addEventListener("mousemove", (e) => {
      const map = e.target.tilemap;
      if (!map) return;
      const host = map.hostAt(e);
      e.target.title = host ? this.tooltip(host) : "";
      e.target.style.cursor = host ? "pointer" : "default";
    });
    window.addEventListener("resize", perFrame(() => {
      if (this.visible) for (const map of new Set(this.maps.values())) map.layout(map.canvas.parentElement.clientWidth);
    }));
  }

  /** Test and debugging hooks. */
  tileAt(host) {
    const map = this.maps.get(host);
    if (map) return map.rectOf(host);
    const tile = this.tiles.get(host);
    if (!tile) return null;
    const r = tile.getBoundingClientRect();
    return { x: r.left, y: r.top, width: r.width, height: r.height };
  }

  /** Scroll a host's tile into view; its position then. */
  reveal(host) {
    let r = this.tileAt(host);
    if (r && (r.y < 60 || r.y + r.height > window.innerHeight)) {
      window.scrollBy(0, r.y - window.innerHeight / 2);
      r = this.tileAt(host);
    }
    return r;
  }

  stateOf(host) {
    const s = this.store.computeHosts().get(host);
    return s ? hostState(s) : null;
  }

  select(host) {
    for (const t of document.querySelectorAll(".tile.selected")) t.classList.remove("selected");
    for (const map of new Set(this.maps.values())) map.select(null);
    if (!host) return;
    const tile = this.tiles.get(host);
    if (tile) tile.classList.add("selected");
    const map = this.maps.get(host);
    if (map) map.select(host);
  }

  tooltip(host) {
    const s = this.store.computeHosts().get(host);
    if (!s) return host;
    const facts = this.store.hosts.get(host);
    const extra = [];
    if (s.disabled_reason) extra.push(`disabled: ${s.disabled_reason}`);
    if (s.state_reason) extra.push(s.state_reason === "left" ? "left cleanly" : "forced down");
    if (facts && facts.maintenance_reason) extra.push(`maintenance: ${facts.maintenance_reason}`);
    if (facts && facts.open_recovery_id) extra.push(`recovery ${facts.open_recovery_id} (${facts.open_recovery_phase})`);
    return [`${host}: ${TILE_LABELS[hostState(s)]} (${s.state})`, ...extra].join("\n");
  }

  update(what) {
    const ch = what.changed;
    if (!("services" in ch) && !("hosts" in ch)) return;
    const svc = ch.services;
    if (what.snapshot || svc === null) {
      this.dirty = true;
    } else if (svc) {
      for (const id of svc.keys) {
        const now = this.store.services.get(id);
        const before = svc.before.get(id);
        const s = now || before;
        if (!s || s.topic !== "compute") continue;
        if (!now || this.zoneOf.get(s.host) !== now.zone
            || (!this.tiles.has(s.host) && !this.maps.has(s.host))) { this.dirty = true; break; }
        this.paintTile(now);
      }
    }
    if (this.visible) {
      if (this.dirty) this.render(); else this.scheduleCounts();
    }
  }

  paintTile(s) {
    const state = hostState(s);
    const map = this.maps.get(s.host);
    if (map) { map.set(s.host, state, true); return; }
    const tile = this.tiles.get(s.host);
    if (tile.dataset.state !== state) {
      tile.dataset.state = state;
      const small = tile.querySelector("small");
      if (small) small.textContent = TILE_LABELS[state];
    }
    tile.title = "";
  }

  show() {
    this.visible = true;
    if (this.dirty) this.render(); else this.renderCounts();
  }

  hide() { this.visible = false; }

  renderCounts() {
    const counts = Object.fromEntries(TILE_STATES.map((s) => [s, 0]));
    const hosts = this.store.computeHosts();
    for (const s of hosts.values()) counts[hostState(s)]++;
    $("fleet-counts").innerHTML = `<span class="chip"><b>${hosts.size}</b> compute hosts</span>` +
      TILE_STATES.map((s) => `<span class="chip" data-state="${s}" data-count="${s}"><b>${counts[s]}</b> ${TILE_LABELS[s]}</span>`).join("");
    const byState = { up: 0, down: 0, unknown: 0 };
    for (const s of this.store.services.values()) byState[s.state]++;
    $("fleet-service-counts").textContent =
      `${this.store.services.size} services: ${byState.up} up, ${byState.down} down, ${byState.unknown} unknown`;
  }

  render() {
    this.dirty = false;
    const denied = !this.store.sections.has("services");
    $("fleet-denied").hidden = !denied;
    if (denied) {
      $("fleet-denied").textContent = "This token may not list services (policy vigil:services:list): no fleet to show.";
    }
    this.renderCounts();
    const hosts = this.store.computeHosts();
    const zones = new Map();
    for (const s of hosts.values()) {
      if (!zones.has(s.zone)) zones.set(s.zone, []);
      zones.get(s.zone).push(s);
    }
    const style = getComputedStyle(document.documentElement);
    const colours = Object.fromEntries(TILE_STATES.map((s) => [s, style.getPropertyValue(`--${s}`).trim()]));
    const root = $("fleet-zones");
    const html = [];
    const big = [];
    for (const zone of [...zones.keys()].sort(byName)) {
      const list = zones.get(zone).sort((a, b) => byName(a.host, b.host));
      html.push(`<div class="zone" data-zone="${esc(zone)}"><h2>${esc(zone)} <span class="muted small">${list.length} hosts</span></h2>`);
      if (list.length > DENSE) {
        html.push(`<div class="tilemap-box"><canvas class="tilemap" data-zone="${esc(zone)}" role="img" aria-label="${list.length} compute hosts of zone ${esc(zone)}: see the Services page for the list"></canvas></div>`);
        big.push([zone, list]);
      } else {
        html.push('<div class="tiles">');
        for (const s of list) {
          const state = hostState(s);
          html.push(`<button type="button" class="tile" data-host="${esc(s.host)}" data-state="${state}">${esc(s.host)}<small>${TILE_LABELS[state]}</small></button>`);
        }
        html.push("</div>");
      }
      html.push("</div>");
    }
    if (!hosts.size && !denied) html.push('<p class="muted">No compute host has registered yet.</p>');
    root.innerHTML = html.join("");
    this.tiles.clear();
    this.maps.clear();
    this.zoneOf.clear();
    for (const tile of root.querySelectorAll("button[data-host]")) this.tiles.set(tile.dataset.host, tile);
    for (const [zone, list] of big) {
      const canvas = root.querySelector(`canvas[data-zone="${CSS.escape(zone)}"]`);
      const map = new TileMap(canvas, list.map((s) => s.host), colours);
      list.forEach((s, i) => { map.states[i] = hostState(s); });
      canvas.tilemap = map;
      map.layout(canvas.parentElement.clientWidth);
      for (const s of list) this.maps.set(s.host, map);
    }
    for (const s of hosts.values()) this.zoneOf.set(s.host, s.zone);
  }
}
