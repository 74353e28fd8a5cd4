"""The serial console (Nova's ``nova-serialproxy`` and the remote-consoles API).

- :mod:`.tokens`: make a one-time console URL for an instance, redeem it, check it still
  points where the instance is;
- :mod:`.origin`: which browser pages may open a console (pure);
- :mod:`.proxy`: the ASGI application of ``vigil serialproxy``: the WebSocket bridged to the
  instance's console, and the page (xterm.js, shipped in ``static/``);
- :mod:`.daemon`: ``vigil serialproxy``.

See docs/console.md.
"""
