"""oslo.policy rules of the API, with Nova's defaults and names.

The rule names are Nova's (``os_compute_api:os-services:list`` ...), so an operator's existing
policy overrides for os-services apply unchanged. Defaults are Nova's: admin only. A reader or
member gets 403. ``[api] policy_file`` overrides any rule (YAML or JSON).

Resources added later register their own defaults with :func:`register` at import time of
their route module, next to the routes they guard.
"""

from __future__ import annotations

import os

from oslo_config import cfg
from oslo_policy import policy as oslo_policy

from vigil.api.auth import Context
from vigil.api.errors import Fault
from vigil.errors import ConfigError

ADMIN = "role:admin"

_DEFAULTS: list[oslo_policy.RuleDefault] = [
    oslo_policy.RuleDefault("admin_api", ADMIN, description="Default rule for admin APIs."),
]


def register(*rules: oslo_policy.RuleDefault) -> None:
    """Add a resource's default rules (called by route modules when imported)."""
    known = {r.name for r in _DEFAULTS}
    _DEFAULTS.extend(r for r in rules if r.name not in known)


def defaults() -> list[oslo_policy.RuleDefault]:
    return list(_DEFAULTS)


class Policy:
    """An Enforcer over the registered defaults and the optional override file."""

    def __init__(self, conf: cfg.ConfigOpts, policy_file: str | None = None) -> None:
        if policy_file is not None and not os.path.isfile(policy_file):
            raise ConfigError(f"[api] policy_file {policy_file} does not exist")
        self._policy_file = policy_file
        self._enforcer = oslo_policy.Enforcer(conf, policy_file=policy_file, use_conf=True)
        self.sync_defaults()

    def sync_defaults(self) -> None:
        """Register the defaults known now and (re)load the override file.

        Called again by the app factory once every route module is imported, since route
        modules register their defaults at import time.
        """
        known = set(self._enforcer.registered_rules)
        self._enforcer.register_defaults([r for r in defaults() if r.name not in known])
        try:
            self._enforcer.load_rules(force_reload=True)
        except Exception as exc:  # oslo.policy raises several types for a bad file
            raise ConfigError(f"cannot load policy file {self._policy_file}: {exc}") from exc

    def allows(self, rule: str, ctx: Context, target: dict[str, object] | None = None) -> bool:
        """Whether ``ctx`` may do ``rule`` (the same check :meth:`authorize` makes)."""
        return bool(self._enforcer.enforce(rule, target or {}, ctx.policy_creds(),
                                           do_raise=False))

    def rules(self) -> list[str]:
        """The names of the registered rules (Vigil's defaults), sorted."""
        return sorted(self._enforcer.registered_rules)

    def authorize(self, rule: str, ctx: Context, target: dict[str, object] | None = None) -> None:
        """Raise a 403 fault (Nova's message) unless ``ctx`` may do ``rule``."""
        if not self.allows(rule, ctx, target):
            raise Fault(403, f"Policy doesn't allow {rule} to be performed.")
