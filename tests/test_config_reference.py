"""The configuration reference is generated from settings.py's declarations and agrees with them.

docs/configuration.md, the README's table and .env.example are rendered by tools/config_reference.py
from the registry that idds_site/env.py's helpers fill; these tests fail when a committed file is
stale, when settings.py reads a variable outside the helpers, or when a declaration has no help.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "config_reference.py"


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    """tools/config_reference.py as a module (tools/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("config_reference", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as an import would: its dataclasses look their module up by name.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def declarations(reference):
    return reference.load_declarations()


def test_the_committed_files_equal_the_generated_ones():
    # when
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, cwd=ROOT, check=False
    )

    # then
    assert result.returncode == 0, result.stderr


def test_check_names_a_stale_file(reference, tmp_path, monkeypatch):
    # given: a copy of .env.example with one default changed by hand
    stale = tmp_path / ".env.example"
    stale.write_text(reference.ENV_EXAMPLE.read_text().replace("# DEBUG=false", "# DEBUG=true"))
    monkeypatch.setattr(reference, "ENV_EXAMPLE", stale)

    # when
    stale_files = reference.stale_files()

    # then
    assert stale_files == [stale]


def test_every_variable_settings_py_names_is_declared_when_settings_load(reference, declarations):
    # given
    in_source = reference.declared_names_in_source()

    # when
    registered = {declaration.name for declaration in declarations}

    # then: no helper call is skipped by the reference load, and nothing is registered twice
    assert registered == in_source
    assert len(declarations) == len(registered)


def test_settings_py_reads_the_environment_only_through_the_helpers(reference):
    assert reference.raw_reads_in_source() == []


def test_every_declaration_says_what_it_does(declarations):
    undocumented = [declaration.name for declaration in declarations if len(declaration.help) < 20]

    assert undocumented == []


def test_every_variable_is_in_the_reference_and_the_example(declarations):
    # given
    configuration = (ROOT / "docs" / "configuration.md").read_text()
    example = (ROOT / ".env.example").read_text()

    # then
    for declaration in declarations:
        assert f"| `{declaration.name}`" in configuration
        assert f"\n# {declaration.name}=" in example
        if declaration.file_form:
            assert f"\n# {declaration.name}_FILE=" in example
