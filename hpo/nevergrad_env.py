"""The virtual environment the nevergrad generator runs in (its pins conflict with bayes-opt 3).

Every nevergrad >= 1.0.4 pins ``bayesian-optimization==1.4.0`` and older nevergrad cannot import beside
bayes-opt >= 2, so the two cannot share the service's environment. Nevergrad gets its own venv and runs as a
generator program (``hpo/runners/nevergrad_runner.py``) through the %IN/%OUT contract; no package is patched.
``python manage.py setup_nevergrad`` creates it, and the generator creates it on first use when it is missing.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

#: Installed into the venv (~30 s on Python 3.11). numpy stays below 2: with numpy 2 nevergrad 1.0.12's
#: metamodel (picked by NGOpt on small continuous spaces) raises "only 0-dimensional arrays can be converted to
#: Python scalars" inside a helper thread; pandas 3 needs numpy 2, hence its pin.
NEVERGRAD_REQUIREMENTS = ("nevergrad~=1.0.12", "numpy~=1.26.4", "pandas~=2.2.3")
NEVERGRAD_REQUIREMENT = " ".join(NEVERGRAD_REQUIREMENTS)
#: Creating the venv takes ~30 s; installing could take a few minutes on a slow mirror.
INSTALL_TIMEOUT = 900


def default_venv_path() -> Path:
    """``HPO_NEVERGRAD_VENV`` from the environment or settings, else ``<project>/var/nevergrad-venv``."""
    configured = os.environ.get("HPO_NEVERGRAD_VENV")
    if not configured:
        try:
            configured = getattr(settings, "HPO_NEVERGRAD_VENV", None)
        except ImproperlyConfigured:  # settings not configured (a benchmark, a script)
            configured = None
    return Path(configured) if configured else Path(__file__).resolve().parent.parent / "var" / "nevergrad-venv"


def venv_python(path: Path) -> Path:
    """The interpreter of the venv at ``path``."""
    return path / "bin" / "python"


def is_ready(path: Path) -> bool:
    """Whether the venv exists with the current requirements installed completely (the marker is written last)."""
    marker = path / ".nevergrad-ready"
    return marker.is_file() and marker.read_text().strip() == NEVERGRAD_REQUIREMENT and venv_python(path).exists()


def ensure_venv(path: Path | None = None, *, force: bool = False) -> Path:
    """Create the venv and install nevergrad unless already done; returns the venv's python.

    A file lock makes concurrent workers wait for one installation instead of racing.
    """
    path = path or default_venv_path()
    if is_ready(path) and not force:
        return venv_python(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_ready(path) and not force:
            return venv_python(path)
        # The base interpreter, not this venv's: a venv made from a venv's python would share nothing anyway,
        # but the base one is what `python -m venv` documents.
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", "--clear", str(path)], check=True, timeout=INSTALL_TIMEOUT)
        subprocess.run(
            [str(venv_python(path)), "-m", "pip", "install", "--quiet", *NEVERGRAD_REQUIREMENTS],
            check=True,
            timeout=INSTALL_TIMEOUT,
        )
        (path / ".nevergrad-ready").write_text(NEVERGRAD_REQUIREMENT + "\n")
    return venv_python(path)
