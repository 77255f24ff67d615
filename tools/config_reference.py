"""Render the configuration reference from the declarations in idds_site/settings.py.

Every environment variable is declared once, with its help text, by the typed helpers of
``idds_site/env.py``. This script loads settings.py into a fresh registry and writes:

* ``docs/configuration.md``: every variable, by section (variable, default, type, meaning);
* the README's configuration table, between ``<!-- config-table:start -->`` and
  ``<!-- config-table:end -->``: the variables most deployments set, plus a link to the full list;
* ``.env.example``: every variable, commented out at its default, with its help.

    python tools/config_reference.py --write   # rewrite the three files
    python tools/config_reference.py --check   # exit 1, naming the stale files, if any differ

``tests/test_config_reference.py`` runs ``--check``, so a new or changed declaration fails the
suite until the files are regenerated.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import runpy
import sys
import tempfile
import textwrap
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from idds_site.env import Declaration

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_PATH = ROOT / "idds_site" / "settings.py"
CONFIGURATION_DOC = ROOT / "docs" / "configuration.md"
README = ROOT / "README.md"
ENV_EXAMPLE = ROOT / ".env.example"
README_START = "<!-- config-table:start -->"
README_END = "<!-- config-table:end -->"

# Settings are loaded in this environment and no other: every conditional declaration (the
# PostgreSQL-only and broker-only ones) runs, and what the caller has set cannot change the output.
REFERENCE_ENVIRONMENT = {
    "DATABASE_URL": "postgres://reference@127.0.0.1:5432/reference",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
}

# The variables most deployments set, shown in the README; the rest are in docs/configuration.md.
README_VARIABLES = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "SECRET_KEY",
    "IDDS_REQUIRE_SECRET_KEY",
    "ALLOWED_HOSTS",
    "DEBUG",
    "IDDS_MESSAGE_SINKS",
    "IDDS_STAGING_BACKEND",
    "IDDS_TAPE_TIME_SCALE",
    "IDDS_SANDBOX_RUNTIME",
    "LOG_LEVEL",
)


@dataclass(frozen=True)
class Section:
    title: str
    #: A variable belongs to the first section with a matching name or name prefix.
    prefixes: tuple[str, ...]


#: Takes every variable no other section claims (listed first: it holds the site-wide ones).
FALLBACK_SECTION = "Site and web"
SECTIONS = (
    Section(FALLBACK_SECTION, ()),
    Section("Database", ("DATABASE_URL", "CONN_MAX_AGE", "IDDS_DB_")),
    Section("Celery", ("REDIS_URL", "CELERY_")),
    Section(
        "Agents",
        (
            "IDDS_SWEEP_",
            "IDDS_LIFETIME_",
            "IDDS_CLAIM_",
            "IDDS_POLL_",
            "IDDS_MAX_RETRIES",
            "IDDS_STALE_",
            "IDDS_EXTRA_WORK_TYPES",
        ),
    ),
    Section("Messages", ("IDDS_MESSAGE_", "IDDS_EXTRA_SINKS", "IDDS_STOMP_", "IDDS_STREAM_")),
    Section("Data carousel", ("IDDS_STAGING_", "IDDS_TAPE_", "IDDS_CAROUSEL_", "IDDS_RUCIO_")),
    Section("Hyperparameter optimisation and user programs", ("HPO_", "IDDS_SANDBOX_")),
)

#: A helper call in settings.py; group 1 is the variable's name.
DECLARATION_CALL = re.compile(r"\benv_(?:str|bool|int|float|list|secret|mapping)\(\s*\"([A-Z][A-Z0-9_]*)\"")
#: Any way of reading the environment that would bypass the registry.
RAW_READ = re.compile(r"\bos\.environ\b|\bgetenv\(|\benviron\.Env\(\)|\benv\.\w+\(")

KIND_NOTES = {
    "boolean": "boolean",
    "integer": "integer",
    "number": "number",
    "list": "comma-separated list",
    "mapping": "`key=value` list",
    "text": "text",
    "secret": "secret",
}


def env_module() -> ModuleType:
    """``idds_site.env``, importable from a plain script run as ``python tools/config_reference.py``."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("idds_site.env")


@contextmanager
def reference_environment() -> Iterator[str]:
    """``os.environ`` replaced by ``REFERENCE_ENVIRONMENT`` plus a scratch ``IDDS_VAR_DIR`` (yielded)."""
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="config-reference-") as var_dir:
        os.environ.clear()
        os.environ.update({**REFERENCE_ENVIRONMENT, "IDDS_VAR_DIR": var_dir})
        try:
            yield var_dir
        finally:
            os.environ.clear()
            os.environ.update(saved)


def load_declarations() -> list[Declaration]:
    """Every declaration settings.py makes, in order, from a fresh run of it in the reference environment."""
    env = env_module()
    with env.fresh_registry() as registry, reference_environment() as var_dir:
        runpy.run_path(str(SETTINGS_PATH), run_name="idds_site.settings_reference")
        declarations = list(registry.values())
    # A default built from a path (the checkout, IDDS_VAR_DIR) would differ on every machine and run.
    local = [d.name for d in declarations if d.default_doc is None and (var_dir in d.default or str(ROOT) in d.default)]
    if local:
        raise SystemExit(f"give these declarations a doc_default, their default is a local path: {', '.join(local)}")
    return declarations


def declared_names_in_source() -> set[str]:
    """The names settings.py passes to a helper, found in its text (to prove the registry saw them all)."""
    return set(DECLARATION_CALL.findall(SETTINGS_PATH.read_text()))


def raw_reads_in_source() -> list[str]:
    """Lines of settings.py that read the environment without a helper (there should be none)."""
    return [line.strip() for line in SETTINGS_PATH.read_text().splitlines() if RAW_READ.search(line)]


def section_of(name: str) -> str:
    return next((section.title for section in SECTIONS if name.startswith(section.prefixes)), FALLBACK_SECTION)


def by_section(declarations: Iterable[Declaration]) -> list[tuple[str, list[Declaration]]]:
    """Declarations grouped in ``SECTIONS`` order, each group in declaration order."""
    groups: dict[str, list[Declaration]] = {section.title: [] for section in SECTIONS}
    for declaration in declarations:
        groups[section_of(declaration.name)].append(declaration)
    return [(title, members) for title, members in groups.items() if members]


def default_markdown(declaration: Declaration) -> str:
    if declaration.default_doc is not None:
        return declaration.default_doc
    return f"`{declaration.default}`" if declaration.default else "unset"


def variable_markdown(declaration: Declaration) -> str:
    if declaration.file_form:
        return f"`{declaration.name}` / `{declaration.name}_FILE`"
    return f"`{declaration.name}`"


def type_markdown(declaration: Declaration) -> str:
    note = KIND_NOTES[declaration.kind]
    if declaration.minimum is not None:
        note += f" ≥ {declaration.minimum:g}"
    return note


def meaning_markdown(declaration: Declaration) -> str:
    meaning = declaration.help
    if declaration.file_form:
        meaning += f" `{declaration.name}_FILE` names a file holding the value (container secrets); it wins."
    return meaning


def table(declarations: Iterable[Declaration]) -> list[str]:
    lines = ["| variable | default | type | meaning |", "|---|---|---|---|"]
    lines += [
        f"| {variable_markdown(d)} | {default_markdown(d)} | {type_markdown(d)} | {meaning_markdown(d)} |"
        for d in declarations
    ]
    return lines


def render_configuration_doc(declarations: list[Declaration]) -> str:
    lines = [
        "# Configuration",
        "",
        "<!-- Generated by tools/config_reference.py from idds_site/settings.py: edit the help texts there. -->",
        "",
        "Everything comes from environment variables, read by `idds_site/settings.py` through the typed",
        "helpers of `idds_site/env.py`. A malformed value (a boolean that is not one, an integer below its",
        "minimum, an unknown sink) stops start-up with the variable's name. With nothing set, the embedded",
        "default runs: SQLite and Celery's filesystem broker under `IDDS_VAR_DIR`.",
        "",
        "Types: a boolean is `true`/`false`, `yes`/`no`, `on`/`off` or `1`/`0`; a list is comma-separated;",
        "a `key=value` list is comma-separated `key=value` pairs; `≥ n` is the smallest value accepted. A",
        "boolean, number, list or `key=value` list set to the empty string takes its default; a text",
        "variable set to the empty string is empty. A secret can instead be read from the file that",
        "`<NAME>_FILE` names (for container secrets). `.env.example` lists the same variables, commented",
        "out at their defaults.",
        "",
        f"{len(declarations)} variables.",
    ]
    for title, members in by_section(declarations):
        lines += ["", f"## {title}", "", *table(members)]
    return "\n".join(lines) + "\n"


def render_readme_table(declarations: list[Declaration]) -> str:
    named = {d.name: d for d in declarations}
    missing = [name for name in README_VARIABLES if name not in named]
    if missing:
        raise SystemExit(f"README_VARIABLES names undeclared variables: {', '.join(missing)}")
    lines = [
        README_START,
        *table(named[name] for name in README_VARIABLES),
        "",
        f"All {len(declarations)} variables, with their types and defaults: "
        "[docs/configuration.md](docs/configuration.md).",
        README_END,
    ]
    return "\n".join(lines)


def render_readme(declarations: list[Declaration], current: str) -> str:
    start, end = current.find(README_START), current.find(README_END)
    if start < 0 or end < start:
        raise SystemExit(f"README.md lacks the {README_START} ... {README_END} markers")
    return current[:start] + render_readme_table(declarations) + current[end + len(README_END) :]


def plain(text: str) -> str:
    """Markdown inline code made plain text for a shell-style file."""
    return text.replace("`", "")


def comment(text: str) -> list[str]:
    return textwrap.wrap(plain(text), width=98, initial_indent="# ", subsequent_indent="# ")


def render_env_example(declarations: list[Declaration]) -> str:
    lines = [
        "# Every environment variable the service reads, commented out at its default.",
        "# Generated by tools/config_reference.py from idds_site/settings.py; docs/configuration.md explains them.",
        "# Nothing set = the embedded default (SQLite and Celery's filesystem broker under var/). For production",
        "# set at least DATABASE_URL, REDIS_URL, SECRET_KEY (or SECRET_KEY_FILE), IDDS_REQUIRE_SECRET_KEY=true",
        "# and ALLOWED_HOSTS.",
    ]
    for title, members in by_section(declarations):
        lines += ["", f"# === {title} ==="]
        for declaration in members:
            lines += ["", *comment(f"{meaning_markdown(declaration)} ({type_markdown(declaration)})")]
            if declaration.default_doc is not None:
                lines += [*comment(f"Default: {declaration.default_doc}."), f"# {declaration.name}="]
            else:
                lines.append(f"# {declaration.name}={declaration.default}")
            if declaration.file_form:
                lines.append(f"# {declaration.name}_FILE=")
    return "\n".join(lines) + "\n"


def rendered_files() -> dict[Path, str]:
    """Each generated file's path and the text it should have."""
    declarations = load_declarations()
    return {
        CONFIGURATION_DOC: render_configuration_doc(declarations),
        README: render_readme(declarations, README.read_text()),
        ENV_EXAMPLE: render_env_example(declarations),
    }


def stale_files() -> list[Path]:
    return [path for path, text in rendered_files().items() if not path.exists() or path.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the generated files")
    mode.add_argument("--check", action="store_true", help="exit 1 if a generated file is out of date")
    arguments = parser.parse_args(argv)
    if arguments.write:
        for path, text in rendered_files().items():
            path.write_text(text)
        return 0
    stale = stale_files()
    for path in stale:
        sys.stderr.write(f"{path.relative_to(ROOT)} is out of date: run python tools/config_reference.py --write\n")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
