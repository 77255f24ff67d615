"""A small subset of Rucio's RSE expressions, enough for staging rules.

Supported: a name (``SIM-1_TAPE``), ``*`` (every RSE), unions with ``|`` and a complement with
``\\`` (``*\\SIM-1_TAPE`` = everything but SIM-1_TAPE, the form a re-stage rule uses to avoid a
source), with optional parentheses around each side.
"""

from __future__ import annotations


def _terms(text: str) -> set[str]:
    return {term.strip() for term in text.strip().strip("()").split("|") if term.strip()}


def rse_matches(expression: str | None, rse: str) -> bool:
    """Whether ``rse`` is in the set the expression denotes (an empty expression allows all)."""
    if not expression:
        return True
    included, *excluded = expression.split("\\")
    allowed = _terms(included)
    if "*" not in allowed and rse not in allowed:
        return False
    return not any(rse in _terms(part) for part in excluded)
