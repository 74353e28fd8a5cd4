// Fleet: counts by state, and one tile per compute host, grouped by availability zone.

import { $, esc, hostState, perFrame, TILE_LABELS, TILE_STATES } from "./util.js";

const DENSE = 300;   // more hosts than this: small squares without names
const byName = (a, b) => a.localeCompare(b, undefined, { numeric: true });

export class FleetPage {
  constructor(store, openHost) {
    this.store = store;
    this.openHost = openHost;
    this.tiles = new Map();        // host -> element
    this.zoneOf = new Map();       // host -> zone rendered
    this.dirty = true;
    this.scheduleCounts = perFrame(() => this.renderCounts());
    const zones = $("fleet-zones");
    zones.addEventListener("click", (e) => {
      const tile = e.target.closest("[data-host]");
      if (tile) this.openHost(tile.dataset.host);
    });
    zones.addEventListener("mouseover", (e) => {
      const tile = e.target.closest("[data-host]");
      if (tile && !tile.title) tile.title = this.tooltip(tile.dataset.host);
    });
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
    if (what.snapshot || svc === null || svc === undefined) {
      if (what.snapshot || svc === null) this.dirty = true;
    } else {
      for (const id of svc.keys) {
        const now = this.store.services.get(id);
        const before = svc.before.get(id);
        const s = now || before;
        if (!s || s.topic !== "compute") continue;
        const tile = this.tiles.get(s.host);
        if (!now || !tile || this.zoneOf.get(s.host) !== now.zone) { this.dirty = true; break; }
        this.paintTile(tile, now);
      }
    }
    if (this.visible) {
      if (this.dirty) this.render(); else this.scheduleCounts();
    }
  }

  paintTile(tile, s) {
    const state = hostState(s);
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
    const dense = hosts.size > DENSE;
    const html = [];
    for (const zone of [...zones.keys()].sort(byName)) {
      const list = zones.get(zone).sort((a, b) => byName(a.host, b.host));
      html.push(`<div class="zone" data-zone="${esc(zone)}"><h2>${esc(zone)} <span class="muted small">${list.length} hosts</span></h2><div class="tiles${dense ? " dense" : ""}">`);
      for (const s of list) {
        const state = hostState(s);
        html.push(dense
          ? `<i class="tile" data-host="${esc(s.host)}" data-state="${state}"></i>`
          : `<button type="button" class="tile" data-host="${esc(s.host)}" data-state="${state}">${esc(s.host)}<small>${TILE_LABELS[state]}</small></button>`);
      }
      html.push("</div></div>");
    }
    if (!hosts.size && !denied) html.push('<p class="muted">No compute host has registered yet.</p>');
    const root = $("fleet-zones");
    root.innerHTML = html.join("");
    this.tiles.clear();
    this.zoneOf.clear();
    for (const tile of root.querySelectorAll("[data-host]")) this.tiles.set(tile.dataset.host, tile);
    for (const s of hosts.values()) this.zoneOf.set(s.host, s.zone);
  }
}
