// The live feed: server-sent events from GET /v2.1/vigil/feed, read with fetch() and a stream
// reader. EventSource cannot send the X-Auth-Token header, and a token in the URL would end up
// in access logs and the browser's history; fetch() sends it like every other API call.
//
// The feed is "stale" when nothing (event or heartbeat) arrived for 3 heartbeat periods, or
// when the server's own last successful poll is that old (the database is away): the page
// says so, and a silent stream is dropped and reopened with a growing back-off.

import { token } from "./api.js";

const PATH = "/v2.1/vigil/feed";

export class FeedClient {
  constructor(handlers) {
    this.h = handlers;           // {hello, snapshot, change, status(state, detail), denied, unauthorized}
    this.controller = null;
    this.lastMessage = 0;
    this.heartbeat = 2;
    this.interval = 1;
    this.backoff = 0;
    this.state = "idle";
    this.serverError = null;
    this.polledAge = 0;
    this.timer = null;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.connect();
    this.timer = setInterval(() => this.watch(), 500);
  }

  stop() {
    this.stopped = true;
    clearInterval(this.timer);
    if (this.controller) this.controller.abort();
  }

  setState(state, detail = "") {
    this.state = state;
    this.h.status(state, detail);
  }

  staleAfter() { return 3 * Math.max(this.heartbeat, this.interval) * 1000; }

  watch() {
    if (this.stopped) return;
    const silent = performance.now() - this.lastMessage;
    if (silent > this.staleAfter()) {
      this.setState("stale", `no event for ${Math.round(silent / 1000)} s: reconnecting`);
      this.reconnect();
    }
  }

  reconnect() {
    if (this.controller) this.controller.abort();
    this.controller = null;
    const wait = Math.min(10000, this.backoff ? this.backoff * 2 : 500);
    this.backoff = wait;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => { if (!this.stopped) this.connect(); }, wait);
  }

  async connect() {
    if (this.controller) this.controller.abort();
    const controller = new AbortController();
    this.controller = controller;
    if (this.state !== "stale") this.setState("connecting");
    this.lastMessage = performance.now();
    let response;
    try {
      response = await fetch(PATH, {
        headers: { "X-Auth-Token": token.get() || "", Accept: "text/event-stream" },
        signal: controller.signal, cache: "no-store",
      });
    } catch (err) {
      if (controller.signal.aborted) return;
      this.setState("stale", "the API cannot be reached: reconnecting");
      this.reconnect();
      return;
    }
    performance.mark("vigil:feed-open");
    if (response.status === 401) { this.stop(); this.h.unauthorized(); return; }
    if (response.status === 403) { this.stop(); this.h.denied(); return; }
    if (!response.ok || !response.body) {
      this.setState("stale", `the feed answered ${response.status}: reconnecting`);
      this.reconnect();
      return;
    }
    try {
      await this.read(response.body.getReader(), controller);
    } catch (err) {
      if (controller.signal.aborted) return;
    }
    if (controller.signal.aborted || this.stopped) return;
    this.setState("stale", "the feed ended: reconnecting");
    this.reconnect();
  }

  async read(reader, controller) {
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        this.dispatch(block);
        if (controller.signal.aborted) return;
      }
    }
  }

  dispatch(block) {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (!data.length) return;
    if (event === "snapshot") performance.mark("vigil:snapshot-received");
    const payload = JSON.parse(data.join("\n"));
    this.lastMessage = performance.now();
    switch (event) {
      case "hello":
        this.heartbeat = payload.heartbeat;
        this.interval = payload.interval;
        this.h.hello(payload);
        break;
      case "snapshot":
        this.backoff = 0;
        this.h.snapshot(payload);
        this.live(null, 0);
        break;
      case "change":
        this.h.change(payload);
        this.live(null, 0);
        break;
      case "heartbeat":
        this.live(payload.error, payload.age || 0);
        break;
      case "bye":
        // The server ends streams after max_age (or when it stops): reopen at once.
        this.backoff = 0;
        this.connect();
        break;
      default:
        break;
    }
  }

  live(error, age) {
    if (error) {
      this.setState("error", `the API cannot read the database: ${error}`);
    } else if (age * 1000 > this.staleAfter()) {
      this.setState("stale", `the API's last successful poll is ${Math.round(age)} s old`);
    } else if (this.state !== "live") {
      this.setState("live");
    }
  }
}
