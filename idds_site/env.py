"""Typed environment variables, each declared once, with its help text, where settings.py reads it.

``idds_site/settings.py`` reads every variable through these helpers and nothing else. Each call
both returns the parsed value and records a :class:`Declaration` (name, type, documented default,
help, ``_FILE`` form) in :data:`DECLARATIONS`. ``tools/config_reference.py`` renders that registry
into ``docs/configuration.md``, the README's configuration table and ``.env.example``, and
``tests/test_config_reference.py`` checks the committed files against it, so the documentation
cannot drift from what the settings read.

A malformed value stops start-up with the variable's name (``ImproperlyConfigured``) instead of
failing later, the way ``hc/settings.py::envbool`` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

# django-environ rather than os.environ: its str() also resolves "$OTHER_VARIABLE" references,
# which deployments may already rely on.
_environment = environ.Env()


@dataclass(frozen=True)
class Declaration:
    """One variable settings.py reads, as the configuration reference shows it."""

    name: str
    #: boolean, integer, number, list, mapping, text or secret.
    kind: str
    #: The default as the variable's text ("" = unset or empty).
    default: str
    help: str
    #: Markdown sentence shown instead of ``default`` when the default is derived at start-up
    #: (from another variable or the checkout's path), so the reference is the same on every machine.
    default_doc: str | None = None
    #: Whether ``<name>_FILE`` (a file holding the value, for container secrets) is read too.
    file_form: bool = False
    minimum: int | float | None = None


#: Every declaration made so far, in declaration order (settings.py fills it on import).
DECLARATIONS: dict[str, Declaration] = {}


@contextmanager
def fresh_registry() -> Iterator[dict[str, Declaration]]:
    """An empty registry for the duration of the block (to load settings.py again and collect it)."""
    saved = dict(DECLARATIONS)
    DECLARATIONS.clear()
    try:
        yield DECLARATIONS
    finally:
        DECLARATIONS.clear()
        DECLARATIONS.update(saved)


def _declare(
    name: str,
    kind: str,
    default: str,
    help: str,
    *,
    doc_default: str | None = None,
    file_form: bool = False,
    minimum: int | float | None = None,
) -> None:
    DECLARATIONS[name] = Declaration(
        name=name,
        kind=kind,
        default=default,
        help=help,
        default_doc=doc_default,
        file_form=file_form,
        minimum=minimum,
    )


def _raw(name: str) -> str:
    """The variable's text, or "" when unset (set-but-empty counts as unset for typed helpers)."""
    return _environment.str(name, default="")


def env_str(name: str, default: str, *, help: str = "", doc_default: str | None = None) -> str:
    """A text variable; set to the empty string it stays empty (unlike the typed helpers)."""
    _declare(name, "text", default, help, doc_default=doc_default)
    return _environment.str(name, default=default)


def env_bool(name: str, default: bool, *, help: str = "") -> bool:
    """A boolean variable; anything but a clear yes/no is an error, not a silent False."""
    _declare(name, "boolean", "true" if default else "false", help)
    raw = _raw(name)
    if raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use true/false, yes/no, on/off or 1/0")


def env_int(name: str, default: int, *, minimum: int | None = None, help: str = "") -> int:
    """An integer variable, refused at start-up when it does not parse or is below ``minimum``."""
    _declare(name, "integer", str(default), help, minimum=minimum)
    raw = _raw(name)
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None, help: str = "") -> float:
    """A float variable, refused at start-up when it does not parse or is below ``minimum``."""
    _declare(name, "number", f"{default:g}", help, minimum=minimum)
    raw = _raw(name)
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def _split(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_list(name: str, default: list[str], *, help: str = "") -> list[str]:
    """A comma-separated list; blanks around items and empty items are dropped."""
    _declare(name, "list", ",".join(default), help)
    raw = _raw(name)
    if raw == "":
        return default
    return _split(raw)


def env_secret(name: str, default: str, *, help: str = "") -> str:
    """A secret from ``NAME`` or from the file named by ``NAME_FILE`` (for container secrets)."""
    _declare(name, "secret", default, help, file_form=True)
    file_name = _raw(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc}") from None
    return _environment.str(name, default=default)


def env_mapping(name: str, *, help: str = "") -> dict[str, str]:
    """``key=value,key=value`` pairs, e.g. extra work types ``99=tests.worktypes.Countdown``."""
    _declare(name, "mapping", "", help)
    result: dict[str, str] = {}
    for item in _split(_raw(name)):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ImproperlyConfigured(f"{name}: {item!r} is not of the form key=value")
        result[key.strip()] = value.strip()
    return result
