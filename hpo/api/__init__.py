"""Native REST API of HPO studies."""

from __future__ import annotations
