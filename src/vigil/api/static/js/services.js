// Services: the os-services list with filters and sorting, windowed: only the rows in view
// (plus a margin) exist in the page, so 10,000 services cost what 60 do.

import { $, esc, perFrame } from "./util.js";

const ROW_H = 28;
const OVERSCAN = 12;
const COLUMNS = [
  ["id", "ID"], ["binary", "Binary"], ["host", "Host"], ["zone", "Zone"], ["status", "Status"],
  ["state", "State"], ["forced_down", "Forced"], ["disabled_reason", "Disabled reason"],
  ["flags", "Host HA"],
];
const collator = new Intl.Collator(undefined, { numeric: true });

function stateOf(s) {
  if (s.state === "down" && s.state_reason === "left") return "down (left)";
  return s.state;
}

export class ServicesPage {
  constructor(store, openHost) {
    this.store = store;
    this.openHost = openHost;
    this.sort = { key: "id", dir: 1 };
    this.view = [];            // the filtered, sorted services
    this.needsFilter = true;
    this.schedule = perFrame(() => this.render());
    this.scroll = $("svc-scroll");
    this.scroll.addEventListener("scroll", perFrame(() => this.renderRows()));
    $("svc-rows").addEventListener("click", (e) => {
      const row = e.target.closest("[data-host]");
      if (row) this.openHost(row.dataset.host);
    });
    $("svc-head").innerHTML = COLUMNS.map(([k, label]) => `<span data-key="${k}">${label}</span>`).join("");
    $("svc-head").addEventListener("click", (e) => {
      const key = e.target.dataset && e.target.dataset.key;
      if (!key || key === "flags") return;
      this.sort = { key, dir: this.sort.key === key ? -this.sort.dir : 1 };
      this.refilter();
    });
    for (const id of ["svc-q", "svc-binary", "svc-zone", "svc-status", "svc-state", "svc-flags"]) {
      $(id).addEventListener("input", () => this.refilter());
    }
    window.addEventListener("resize", perFrame(() => this.renderRows()));
  }

  refilter() { this.needsFilter = true; this.schedule(); }

  update(what) {
    if (!("services" in what.changed)) return;
    this.needsFilter = true;
    this.options = null;
    if (this.visible) this.schedule();
  }

  show() { this.visible = true; this.render(); }
  hide() { this.visible = false; }

  fillOptions() {
    if (this.options) return;
    const binaries = new Set(), zones = new Set();
    for (const s of this.store.services.values()) { binaries.add(s.binary); zones.add(s.zone); }
    const fill = (id, values, label) => {
      const sel = $(id);
      const keep = sel.value;
      sel.innerHTML = `<option value="">${label}</option>` +
        [...values].sort(collator.compare).map((v) => `<option>${esc(v)}</option>`).join("");
      sel.value = values.has(keep) ? keep : "";
    };
    fill("svc-binary", binaries, "every binary");
    fill("svc-zone", zones, "every zone");
    this.options = true;
  }

  filter() {
    const q = $("svc-q").value.trim().toLowerCase();
    const binary = $("svc-binary").value, zone = $("svc-zone").value;
    const status = $("svc-status").value, state = $("svc-state").value;
    const flags = $("svc-flags").checked;
    const out = [];
    for (const s of this.store.services.values()) {
      if (binary && s.binary !== binary) continue;
      if (zone && s.zone !== zone) continue;
      if (status && s.status !== status) continue;
      if (state && s.state !== state) continue;
      if (flags && !(s.forced_down || s.quarantined || s.maintenance)) continue;
      if (q && !(s.host.toLowerCase().includes(q) || s.binary.toLowerCase().includes(q) ||
                 s.zone.toLowerCase().includes(q) ||
                 (s.disabled_reason || "").toLowerCase().includes(q))) continue;
      out.push(s);
    }
    const { key, dir } = this.sort;
    out.sort((a, b) => {
      const x = a[key], y = b[key];
      let c;
      if (typeof x === "number" && typeof y === "number") c = x - y;
      else c = collator.compare(String(x ?? ""), String(y ?? ""));
      return c * dir || a.id - b.id;
    });
    this.view = out;
    this.needsFilter = false;
    for (const span of $("svc-head").children) {
      if (span.dataset.key === key) span.dataset.sort = dir > 0 ? "asc" : "desc";
      else delete span.dataset.sort;
    }
  }

  render() {
    if (!this.visible) return;
    const denied = !this.store.sections.has("services");
    $("svc-denied").hidden = !denied;
    $("svc-denied").textContent = "This token may not list services (policy vigil:services:list).";
    this.fillOptions();
    if (this.needsFilter) this.filter();
    $("svc-count").textContent = `${this.view.length} of ${this.store.services.size} services`;
    $("svc-spacer").style.height = `${this.view.length * ROW_H}px`;
    this.renderRows();
  }

  renderRows() {
    if (!this.visible) return;
    const top = this.scroll.scrollTop;
    const height = this.scroll.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const last = Math.min(this.view.length, Math.ceil((top + height) / ROW_H) + OVERSCAN);
    const html = [];
    for (let i = first; i < last; i++) {
      const s = this.view[i];
      const flags = [
        s.quarantined ? '<span class="flag" data-state="quarantined">quarantined</span>' : "",
        s.maintenance ? '<span class="flag" data-state="maintenance">maintenance</span>' : "",
      ].join("");
      const st = s.forced_down ? "forced-down" : s.state;
      html.push(`<div class="vrow" data-id="${s.id}" data-host="${esc(s.host)}" data-binary="${esc(s.binary)}">` +
        `<span>${s.id}</span><span>${esc(s.binary)}</span><span>${esc(s.host)}</span>` +
        `<span>${esc(s.zone)}</span><span>${s.status}</span>` +
        `<span><span class="state" data-state="${st}">${esc(stateOf(s))}</span></span>` +
        `<span>${s.forced_down ? "yes" : ""}</span><span title="${esc(s.disabled_reason)}">${esc(s.disabled_reason)}</span>` +
        `<span class="flags">${flags}</span></div>`);
    }
    const rows = $("svc-rows");
    rows.style.transform = `translateY(${first * ROW_H}px)`;
    rows.innerHTML = html.join("");
  }
}
