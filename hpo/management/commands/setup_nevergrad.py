"""``manage.py setup_nevergrad``: create the nevergrad generator's own virtual environment."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from hpo.nevergrad_env import NEVERGRAD_REQUIREMENT, default_venv_path, ensure_venv


class Command(BaseCommand):
    """Create (or with --force rebuild) the venv that runs nevergrad beside bayes-opt 3."""

    help = f"Create the virtual environment with {NEVERGRAD_REQUIREMENT} used by the nevergrad generator."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--path", type=Path, default=None, help="venv location (default: HPO_NEVERGRAD_VENV)")
        parser.add_argument("--force", action="store_true", help="rebuild even if it exists")

    def handle(self, *args, path: Path | None = None, force: bool = False, **options) -> str:
        python = ensure_venv(path or default_venv_path(), force=force)
        return f"nevergrad ready: {python}"
