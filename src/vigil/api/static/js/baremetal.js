// Bare metal: the ring's members, the nodes each host owns, and hand-overs as they happen.

import { $, clock, el, esc, parseTime, perFrame } from "./util.js";

const collator = new Intl.Collator(undefined, { numeric: true });
const byName = (a, b) => collator.compare(String(a), String(b));

export class BaremetalPage {
  constructor(store) {
    this.store = store;
    this.moved = new Map();      // node uuid -> time it changed owner (highlighted a while)
    this.seenHandovers = new Set();
    this.schedule = perFrame(() => this.render());
  }

  update(what) {
    const ch = what.changed;
    if (!("nodes" in ch) && !("ring" in ch) && !("handovers" in ch)) return;
    const nodes = ch.nodes;
    if (nodes && !what.snapshot) {
      for (const uuid of nodes.keys) {
        const before = nodes.before.get(uuid), now = this.store.nodes.get(uuid);
        if (before && now && before.owner !== now.owner) this.moved.set(uuid, Date.now());
      }
    }
    if (this.visible) this.schedule();
  }

  show() { this.visible = true; this.render(); }
  hide() { this.visible = false; }

  render() {
    if (!this.visible) return;
    const s = this.store;
    const deniedNodes = !s.sections.has("nodes"), deniedRing = !s.sections.has("ring");
    $("bm-denied").hidden = !(deniedNodes || deniedRing);
    $("bm-denied").textContent = [deniedNodes ? "vigil:nodes:list" : "", deniedRing ? "vigil:ring:show" : ""]
      .filter(Boolean).map((r) => `This token may not read ${r}.`).join(" ");
    const ring = s.ring || { members: [], nodes: 0, unmanaged: 0 };
    $("bm-summary").textContent = s.nodes.size
      ? `${s.nodes.size} nodes, ${ring.members.filter((m) => m.member).length} ring members, ${ring.unmanaged} without a live owner`
      : "No bare-metal node registered (vigil node create, or vigil up --baremetal-nodes N).";
    const owned = new Map();
    for (const n of s.nodes.values()) {
      const k = n.owner || "";
      if (!owned.has(k)) owned.set(k, []);
      owned.get(k).push(n);
    }
    const most = Math.max(1, ...ring.members.map((m) => Math.max(m.nodes_owned, m.nodes_mapped)));
    const rows = [el("tr", {}, ...["Host", "State", "Member", "Owns", "Ring maps", ""].map((h) => el("th", {}, h)))];
    for (const m of ring.members) {
      const bar = el("div", { class: "bar" }, el("i"));
      bar.firstChild.style.width = `${Math.round(100 * m.nodes_owned / most)}%`;
      rows.push(el("tr", { "data-member": m.host },
        el("td", {}, m.host), el("td", {}, el("span", { class: "state", "data-state": m.state }, m.state)),
        el("td", {}, m.member ? "yes" : "no (owns nodes)"), el("td", { "data-owned": m.host }, String(m.nodes_owned)),
        el("td", {}, String(m.nodes_mapped)), el("td", {}, bar)));
    }
    $("bm-members").replaceChildren(...rows);
    const now = Date.now();
    const owners = [...owned.keys()].sort((a, b) => (a === "") - (b === "") || byName(a, b));
    const html = owners.map((owner) => {
      const member = ring.members.find((m) => m.host === owner);
      const state = member ? member.state : (owner ? "unknown" : "down");
      const nodes = owned.get(owner).sort((a, b) => byName(a.name || a.uuid, b.name || b.uuid));
      return `<div class="owner" data-owner="${esc(owner)}"><h3>${owner ? esc(owner) : "no owner"}` +
        (owner ? ` <span class="state" data-state="${esc(state)}">${esc(state)}</span>` : "") +
        ` <span class="muted small">${nodes.length} nodes</span></h3><div class="nodes">` +
        nodes.map((n) => {
          const fresh = now - (this.moved.get(n.uuid) || 0) < 3000;
          return `<span class="node${n.instance_uuid ? " busy" : ""}${fresh ? " moved" : ""}" data-node="${esc(n.uuid)}" title="${esc(n.uuid)}\n${esc(n.power_state)}${n.instance_uuid ? `\ninstance ${esc(n.instance_uuid)}` : ""}">${esc(n.name || n.uuid.slice(0, 8))}</span>`;
        }).join("") + "</div></div>";
    });
    $("bm-owners").innerHTML = html.join("");
    const items = [...(s.handovers || [])].reverse().map((h) => {
      const key = `${h.at}/${h.node}`;
      const fresh = !this.seenHandovers.has(key);
      this.seenHandovers.add(key);
      return el("li", { class: fresh ? "fresh" : "", "data-node": h.node },
        el("span", { class: "muted" }, clock(parseTime(h.at))), " ",
        el("b", {}, h.name || h.node.slice(0, 8)), `: ${h.from || "nobody"} → ${h.to || "nobody"}`);
    });
    if (!items.length) items.push(el("li", { class: "muted" }, "No hand-over since this API started watching."));
    $("bm-handovers").replaceChildren(...items);
  }
}
