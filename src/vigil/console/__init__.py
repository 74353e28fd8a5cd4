"""The serial console: tokens, the proxy and its page (docs/console.md)."""
