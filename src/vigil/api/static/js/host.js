// The host drawer: a compute host's services and liveness, HA facts, capacity, instances, and
// the actions this caller may take on it.

import { actionsFor, confirmAction } from "./actions.js";
import { call } from "./api.js";
import { $, dateTime, el, hostState, parseTime, TILE_LABELS } from "./util.js";

const CONSOLE_RULE = "os_compute_api:os-remote-consoles";

/**
 * Nova's remote-consoles call (serial, 2.6), then the proxy's own page for that token, in a new
 * tab: the ws:// URL the API returns names the proxy; its page is console.html on the same
 * origin. The tab is opened before the call, so the browser counts it as the click's.
 */
async function openConsole(serverId) {
  const tab = window.open("about:blank", "_blank");
  try {
    const body = await call("POST", `/v2.1/servers/${encodeURIComponent(serverId)}/remote-consoles`,
      { version: "2.6", body: { remote_console: { protocol: "serial", type: "serial" } } });
    const ws = new URL(body.remote_console.url);
    const page = new URL("/console.html", `${ws.protocol === "wss:" ? "https:" : "http:"}//${ws.host}`);
    page.searchParams.set("token", ws.searchParams.get("token") || "");
    page.searchParams.set("instance", serverId);
    if (tab) tab.location.href = page.toString(); else window.location.href = page.toString();
  } catch (err) {
    if (tab) tab.close();
    window.alert(`No console: ${err.message}`);
  }
}

function pct(used, total) { return total ? Math.min(100, Math.round(100 * used / total)) : 0; }

function bar(used, total, unit) {
  const b = el("div", { class: "bar" }, el("i"));
  b.firstChild.style.width = `${pct(used, total)}%`;
  return el("div", {}, `${used} / ${total} ${unit}`, b);
}

export class HostDrawer {
  constructor(store, can, select) {
    this.store = store;
    this.can = can;
    this.select = select;         // highlight the host's tile (null: none)
    this.host = null;
    this.remote = {};
    this.timer = null;
    $("drawer-close").addEventListener("click", () => this.close());
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !$("confirm").open) this.close();
    });
  }

  open(host) {
    this.host = host;
    this.remote = {};
    $("drawer").hidden = false;
    $("drawer").dataset.host = host;
    this.select(host);
    this.render();
    this.fetch();
  }

  close() {
    this.host = null;
    $("drawer").hidden = true;
    this.select(null);
  }

  update(what) {
    if (!this.host) return;
    const ch = what.changed;
    let mine = what.snapshot || ("hosts" in ch && (ch.hosts === null || ch.hosts.keys.has(this.host)));
    if (!mine && ch.services) {
      for (const id of ch.services.keys) {
        const s = this.store.services.get(id) || ch.services.before.get(id);
        if (s && s.host === this.host) { mine = true; break; }
      }
    }
    if (!mine) return;
    this.render();
    clearTimeout(this.timer);        // the details the feed does not carry, read again
    this.timer = setTimeout(() => this.fetch(), 300);
  }

  async fetch() {
    const host = this.host;
    if (!host) return;
    const jobs = [];
    const get = (key, rule, path, version, pick) => {
      if (!this.can(rule)) { this.remote[key] = { denied: rule }; return; }
      jobs.push(call("GET", path, { version }).then((body) => { this.remote[key] = { data: pick(body) }; })
        .catch((err) => { this.remote[key] = { error: err.message }; }));
    };
    const q = encodeURIComponent(host);
    get("liveness", "vigil:services:list", `/v2.1/vigil/services?host=${q}`, null, (b) => b.services);
    get("facts", "vigil:hosts:show", `/v2.1/vigil/hosts/${q}`, null, (b) => b.host);
    get("capacity", "os_compute_api:os-hypervisors:list-detail",
      `/v2.1/os-hypervisors/detail?hypervisor_hostname_pattern=${q}`, "2.53",
      (b) => b.hypervisors.filter((h) => h.service && h.service.host === host));
    get("instances", "os_compute_api:servers:detail", `/v2.1/servers/detail?host=${q}`, null,
      (b) => b.servers);
    await Promise.all(jobs);
    if (this.host === host) this.render();
  }

  section(title, key, build) {
    const r = this.remote[key];
    const body = !r ? el("p", { class: "muted" }, "Loading…")
      : r.denied ? el("p", { class: "muted" }, `Not shown: policy ${r.denied} does not allow this token.`)
      : r.error ? el("p", { class: "error" }, r.error) : build(r.data);
    return [el("h2", {}, title), body];
  }

  render() {
    const host = this.host;
    if (!host) return;
    const services = this.store.servicesOf(host);
    const compute = services.find((s) => s.topic === "compute");
    const facts = this.store.hosts.get(host) || (this.remote.facts && this.remote.facts.data) || null;
    const state = compute ? hostState(compute) : "unknown";
    $("drawer-title").replaceChildren(host, " ",
      el("span", { class: "state", "data-state": state }, TILE_LABELS[state]));
    const parts = [];
    const actions = actionsFor(compute, facts, this.can);
    if (actions.length) {
      parts.push(el("div", { class: "actions" }, ...actions.map((a) => el("button", {
        type: "button", class: a.danger ? "action danger" : "action", "data-action": a.id,
        onclick: () => confirmAction(a),
      }, a.label))));
    }
    const ha = el("dl", { class: "kv" });
    const add = (k, v) => { if (v !== null && v !== undefined && v !== "") ha.append(el("dt", {}, k), el("dd", {}, String(v))); };
    if (compute) add("Zone", compute.zone);
    if (facts) {
      add("Quarantined", facts.quarantined
        ? `since ${dateTime(parseTime(facts.quarantined_at))}: ${facts.quarantine_reason || ""}` +
          (facts.quarantine_acknowledged ? " (agent acknowledged)" : "") : "no");
      if (facts.released_at) add("Last release", `${dateTime(parseTime(facts.released_at))} by ${facts.released_by}: ${facts.release_reason}`);
      add("Maintenance", facts.maintenance
        ? `since ${dateTime(parseTime(facts.maintenance_since))} by ${facts.maintenance_by}` +
          (facts.maintenance_reason ? `: ${facts.maintenance_reason}` : "") : "no");
      if (facts.open_recovery_id) add("Open recovery", `#${facts.open_recovery_id} (${facts.open_recovery_phase})`);
    } else {
      add("Quarantined", "no");
      add("Maintenance", "no");
    }
    parts.push(el("h2", {}, "HA"), ha);
    const live = new Map(((this.remote.liveness && this.remote.liveness.data) || []).map((s) => [s.id, s]));
    const table = el("table", { class: "grid services" }, el("tr", {}, ...["Binary", "Status", "State",
      "Last heartbeat", "Reports", "Disabled reason"].map((h) => el("th", {}, h))));
    for (const s of services) {
      const l = live.get(s.id) || {};
      const st = s.forced_down ? "forced-down" : s.state;
      table.append(el("tr", { "data-binary": s.binary },
        el("td", { class: "nowrap" }, s.binary), el("td", {}, s.status),
        el("td", {}, el("span", { class: "state", "data-state": st },
          s.state + (s.state_reason ? ` (${s.state_reason.replace("_", " ")})` : ""))),
        el("td", {}, l.last_seen ? dateTime(parseTime(l.last_seen)) : (l.left_at ? `left ${dateTime(parseTime(l.left_at))}` : "")),
        el("td", {}, l.report_count !== undefined ? String(l.report_count) : ""),
        el("td", {}, s.disabled_reason || "")));
    }
    parts.push(el("h2", {}, "Services and liveness"), table);
    parts.push(...this.section("Capacity", "capacity", (hvs) => {
      if (!hvs.length) return el("p", { class: "muted" }, "No compute node reported yet.");
      const box = el("div");
      for (const h of hvs) {
        box.append(el("dl", { class: "kv" },
          el("dt", {}, "Node"), el("dd", {}, h.hypervisor_hostname),
          el("dt", {}, "vCPUs"), el("dd", {}, bar(h.vcpus_used, h.vcpus, "")),
          el("dt", {}, "Memory"), el("dd", {}, bar(h.memory_mb_used, h.memory_mb, "MB")),
          el("dt", {}, "Disk"), el("dd", {}, bar(h.local_gb_used, h.local_gb, "GB")),
          el("dt", {}, "Running VMs"), el("dd", {}, String(h.running_vms))));
      }
      return box;
    }));
    parts.push(...this.section("Instances", "instances", (servers) => {
      if (!servers.length) return el("p", { class: "muted" }, "No instance on this host.");
      const consoles = this.can(CONSOLE_RULE);
      const heads = ["Name", "Status", "Task", "Flavor", "ID", ...(consoles ? [""] : [])];
      const t = el("table", { class: "grid instances" }, el("tr", {}, ...heads.map((h) => el("th", {}, h))));
      for (const v of servers) {
        t.append(el("tr", { "data-server": v.id }, el("td", {}, v.name), el("td", {}, v.status),
          el("td", {}, v["OS-EXT-STS:task_state"] || ""), el("td", {}, (v.flavor && (v.flavor.original_name || v.flavor.id)) || ""),
          el("td", { class: "muted", title: v.id }, v.id.slice(0, 8)),
          consoles ? el("td", {}, v.status === "ACTIVE"
            ? el("button", { type: "button", class: "console", "data-console": v.id,
              title: "Open the instance's serial console (a one-time token, through vigil serialproxy)",
              onclick: () => openConsole(v.id) }, "Console")
            : "") : null));
      }
      return t;
    }));
    $("drawer-body").replaceChildren(...parts);
  }
}
