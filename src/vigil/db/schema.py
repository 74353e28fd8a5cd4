"""The whole schema: every model module, on one ``Base``.

Each feature declares its tables in its own module (:mod:`.models` for services and report
paths, :mod:`.compute_models`, :mod:`.ha_models`, :mod:`.baremetal_models`), all on
:class:`vigil.db.models.Base`. Importing this module imports them all, so ``metadata`` is
complete: :mod:`.migration` hands it to Alembic's environment (``migrations/env.py``).
``Base`` itself knows none of its features (it used to import two of them at its bottom, so
the base module and its features imported each other, and a third feature registered itself
in ``env.py``).
"""

from __future__ import annotations

from vigil.db import baremetal_models, compute_models, ha_models, models

metadata = models.Base.metadata

__all__ = ["baremetal_models", "compute_models", "ha_models", "metadata", "models"]
