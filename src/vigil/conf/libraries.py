"""The configuration groups that libraries own and Vigil's processes read.

oslo.messaging's groups (``[DEFAULT] transport_url``, ``[oslo_messaging_rabbit]``,
``[oslo_messaging_notifications]``...) are registered by :func:`vigil.conf.make` itself
(:mod:`vigil.conf.messaging`). The others are registered by their library only when it is
first used, which is too late for start-up validation (:mod:`vigil.conf.checker`), so their
option lists are taken here from the libraries' own ``oslo.config.opts`` listers:

* ``[oslo_policy]``: oslo.policy's Enforcer (the API).
* ``[keystone_authtoken]``: keystonemiddleware's auth_token (``[api] auth_strategy = keystone``),
  plus the options of the keystoneauth plugin named by its ``auth_type``: the plugin decides them
  at run time, so they are looked up the same way keystoneauth will. keystonemiddleware is an
  optional extra: without it the section is accepted as it is (the API refuses to start with
  the keystone strategy anyway).

A new library group is one more entry in :func:`list_opts` (or :data:`OPEN_SECTIONS` when its
options cannot be known before the library runs).
"""

from __future__ import annotations

from oslo_config import cfg

KEYSTONE = "keystone_authtoken"

# Sections accepted with any option: none today (each library above can list its options).
OPEN_SECTIONS: frozenset[str] = frozenset()


def list_opts(keystone_auth_type: str | None = None) -> tuple[
        list[tuple[str | None, list[cfg.Opt]]], frozenset[str]]:
    """(groups and their options, sections to accept with any option).

    Imports oslo.policy (and keystonemiddleware): :func:`vigil.conf.schema` calls this only
    for files that name something outside Vigil's and oslo.messaging's options."""
    import oslo_policy.opts

    groups: list[tuple[str | None, list[cfg.Opt]]] = list(oslo_policy.opts.list_opts())
    open_sections = set(OPEN_SECTIONS)
    try:
        from keystoneauth1 import exceptions, loading
        from keystonemiddleware import auth_token
    except ImportError:
        open_sections.add(KEYSTONE)
        return groups, frozenset(open_sections)
    groups += auth_token.list_opts()
    groups.append((KEYSTONE, loading.get_auth_common_conf_options()))
    if keystone_auth_type:
        try:
            groups.append((KEYSTONE, loading.get_auth_plugin_conf_options(keystone_auth_type)))
        except exceptions.NoMatchingPlugin:
            # An auth_type keystoneauth does not know: keystonemiddleware reports it with its
            # own message when the API starts; the plugin's options cannot be known here.
            open_sections.add(KEYSTONE)
    return groups, frozenset(open_sections)
