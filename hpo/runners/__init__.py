"""Scripts run outside the service's environment (e.g. in the nevergrad venv)."""

from __future__ import annotations
