"""Vigil: which services are alive, which nodes each one owns, and what happens when one dies."""

import warnings

# oslo.messaging imports oslo.service's eventlet backend, which warns on import although Vigil
# runs only the threading executor.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

__version__ = "0.1.0"
