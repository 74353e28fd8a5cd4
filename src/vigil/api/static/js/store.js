// What the feed says, kept in memory: one object per service, host, recovery, node.
// Pages subscribe and are told which keys of which sections changed.

function rowsToObjects(columns, rows) {
  return rows.map((row) => {
    const o = {};
    for (let i = 0; i < columns.length; i++) o[columns[i]] = row[i];
    return o;
  });
}

const KEYS = {
  services: (o) => o.id,
  hosts: (o) => o.host,
  recoveries: (o) => o.id,
  timelines: (o) => o.recovery_id,
  nodes: (o) => o.uuid,
};

export class Store {
  constructor() {
    this.columns = { services: [], nodes: [] };
    this.sections = new Set();
    this.services = new Map();
    this.hosts = new Map();
    this.recoveries = new Map();
    this.timelines = new Map();
    this.nodes = new Map();
    this.ha = { alerts: [], leader: null };
    this.ring = { members: [], nodes: 0, unmanaged: 0 };
    this.handovers = [];
    this.seq = 0;
    this.at = null;
    this.loaded = false;
    this.listeners = new Set();
  }

  on(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }

  emit(what) { for (const fn of this.listeners) fn(what); }

  hello(h) {
    this.sections = new Set(h.sections);
    this.columns = h.columns;
  }

  objects(name, value) {
    if (name === "services" || name === "nodes") {
      const cols = value.columns || this.columns[name];
      return rowsToObjects(cols, value.rows || value);
    }
    return value;
  }

  snapshot(msg) {
    const changed = {};
    for (const name of Object.keys(KEYS)) this[name] = new Map();
    for (const [name, value] of Object.entries(msg.sections)) {
      if (KEYS[name]) {
        const map = new Map();
        for (const o of this.objects(name, value)) map.set(KEYS[name](o), o);
        this[name] = map;
      } else {
        this[name] = value;
      }
      changed[name] = null;  // null: everything
    }
    this.seq = msg.seq;
    this.at = msg.at;
    this.loaded = true;
    performance.mark("vigil:store-built");
    this.emit({ snapshot: true, changed });
  }

  change(msg) {
    const changed = {};
    for (const [name, value] of Object.entries(msg.changes)) {
      if (KEYS[name]) {
        const map = this[name];
        const keys = new Set();
        const before = new Map();
        const rows = name === "services" || name === "nodes"
          ? rowsToObjects(this.columns[name], value.set) : value.set;
        for (const o of rows) {
          const k = KEYS[name](o);
          before.set(k, map.get(k));
          map.set(k, o);
          keys.add(k);
        }
        for (const k of value.del) {
          before.set(k, map.get(k));
          map.delete(k);
          keys.add(k);
        }
        changed[name] = { keys, before };
      } else {
        this[name] = value;
        changed[name] = null;
      }
    }
    this.seq = msg.seq;
    this.at = msg.at;
    this.emit({ snapshot: false, changed });
  }

  /** Compute services by host (one tile each). */
  computeHosts() {
    const out = new Map();
    for (const s of this.services.values()) {
      if (s.topic === "compute") out.set(s.host, s);
    }
    return out;
  }

  servicesOf(host) {
    return [...this.services.values()].filter((s) => s.host === host);
  }
}
