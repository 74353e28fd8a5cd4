// The console page of vigil serialproxy: an xterm.js terminal bridged to the WebSocket this
// page was opened for (same host, same ?token=, optional &instance=).
//
// Line editing happens here: an instance's console is its standard input, read in lines, and
// no terminal driver on the instance's side echoes keystrokes. So the page echoes what is
// typed, handles Backspace, and sends the line (with "\n") on Enter; the instance's output is
// written as it comes.
(function () {
  "use strict";
  const status = document.getElementById("status");
  const params = new URLSearchParams(window.location.search);
  const term = new Terminal({ convertEol: true, cursorBlink: true, fontSize: 14, rows: 30 });
  term.open(document.getElementById("terminal"));
  window.vigilConsole = { term: term, received: "" };

  function setStatus(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  const token = params.get("token");
  if (!token) {
    setStatus("refused", "no token in this page's address");
    return;
  }
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  let url = scheme + "//" + window.location.host + "/?token=" + encodeURIComponent(token);
  if (params.get("instance")) {
    url += "&instance=" + encodeURIComponent(params.get("instance"));
  }
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const decoder = new TextDecoder();
  let opened = false;
  let line = "";

  ws.onopen = function () {
    opened = true;
    setStatus("open", "connected");
    term.focus();
  };
  ws.onmessage = function (event) {
    const text = typeof event.data === "string" ? event.data
      : decoder.decode(new Uint8Array(event.data), { stream: true });
    window.vigilConsole.received += text;
    term.write(text);
  };
  ws.onclose = function (event) {
    if (!opened) {
      setStatus("refused", "refused (the token is used, expired or not for this console)");
    } else {
      setStatus("closed", "closed" + (event.reason ? ": " + event.reason : ""));
    }
  };
  term.onData(function (data) {
    if (ws.readyState !== WebSocket.OPEN) {
      return;
    }
    for (const ch of data) {
      if (ch === "\r" || ch === "\n") {
        term.write("\r\n");
        ws.send(new TextEncoder().encode(line + "\n"));
        line = "";
      } else if (ch === "\u007f" || ch === "\b") {
        if (line.length > 0) {
          line = line.slice(0, -1);
          term.write("\b \b");
        }
      } else if (ch >= " ") {
        line += ch;
        term.write(ch);
      }
    }
  });
})();
