"""bubblewrap (Debian package ``bubblewrap``): the default sandbox, no daemon and no image needed.

The program sees a read-only /usr (plus the Python prefix and configured read-only paths), an empty /tmp, its
working directory at /sandbox (the only writable place), no network and no other process; it runs with an
environment built from nothing. Only what is bound in exists: the project directory, var/ and /etc are absent.
The Python prefix's own site-packages is shown empty: programs get the standard library, and libraries from a
venv among the read-only paths (docs/sandbox.md).

The process limit needs an unprivileged uid of the program's own. ``RLIMIT_NPROC`` is not enforced for the
host's root, and bwrap started by root in a user namespace maps the sandbox's uid back to root. So:

* started by root, bwrap makes no user namespace; inside, ``setpriv`` drops to a fresh uid from
  ``IDDS_SANDBOX_UID_BASE`` upwards with no capability left, then ``prlimit`` applies the limits;
* started by anyone else, bwrap makes a user namespace (uid 65534 inside) and ``prlimit`` sets the limits
  there, where the process count is the sandbox's alone.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from .base import INSIDE_WORKDIR, SYSTEM_PATH, Program, Runtime
from .limits import Limits, prlimit_argv

#: The uid a user namespace shows the program (nobody).
NAMESPACE_UID = 65534
#: Fresh uids drawn for root-started runs: one per run keeps concurrent runs' process counts apart.
UID_SPAN = 60_000
#: Host files the dynamic loader and /usr/bin symlinks use; nothing secret.
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/alternatives")
SELF_TEST_SECONDS = 15


class Bubblewrap(Runtime):
    """Runs programs under ``bwrap``; see the module docstring."""

    name = "bubblewrap"
    reports_child_pid = True

    def __init__(self, *, binary: str = "bwrap", read_only: tuple[Path, ...] = (), uid_base: int = 200_000) -> None:
        self.binary = binary
        self.read_only = read_only
        self.uid_base = uid_base
        self._uids: dict[str, int] = {}

    def problem(self) -> str | None:
        """Missing or failing a run of ``true`` in the same sandbox programs get."""
        if shutil.which(self.binary) is None:
            return f"the sandbox program {self.binary!r} (bubblewrap) is not installed"
        probe = Program(argv=["true"], workdir=Path("/"), limits=Limits(wall_seconds=SELF_TEST_SECONDS))
        argv = self._argv(probe, workdir=None, uid=self.uid_base)
        try:
            done = subprocess.run(argv, capture_output=True, timeout=SELF_TEST_SECONDS, env={}, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bubblewrap ({self.binary}) failed its self-test: {exc}"
        if done.returncode != 0:
            stderr = done.stderr.decode(errors="replace").strip()[-300:]
            return f"bubblewrap ({self.binary}) failed its self-test (status {done.returncode}): {stderr}"
        return None

    def prepare(self, program: Program) -> None:
        """Started by root: give the working directory to the run's fresh uid."""
        if os.geteuid() == 0:
            uid = self.uid_base + secrets.randbelow(UID_SPAN)
            self._uids[str(program.workdir)] = uid
            for path in [program.workdir, *program.workdir.rglob("*")]:
                os.lchown(path, uid, uid)

    def command(self, program: Program, *, run_name: str, info_fd: int | None = None) -> list[str]:
        uid = self._uids.pop(str(program.workdir), self.uid_base)
        return self._argv(program, workdir=program.workdir, uid=uid, info_fd=info_fd)

    def _argv(self, program: Program, *, workdir: Path | None, uid: int, info_fd: int | None = None) -> list[str]:
        as_root = os.geteuid() == 0
        binds = _read_only_paths((*self.read_only, *program.read_only))
        path = ":".join([*(str(p / "bin") for p in binds if (p / "bin").is_dir()), *SYSTEM_PATH])
        argv = [shutil.which(self.binary) or self.binary]
        if as_root:
            # No user namespace (it would map the program back to root); setpriv drops below.
            argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
            argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
            argv += ["--cap-add", "CAP_SETPCAP"]
        else:
            argv += ["--unshare-all", "--uid", str(NAMESPACE_UID), "--gid", str(NAMESPACE_UID)]
        argv += ["--die-with-parent", "--new-session"]
        if info_fd is not None:
            argv += ["--info-fd", str(info_fd)]
        argv += ["--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64"]
        argv += ["--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin"]
        for name in SYSTEM_FILES:
            argv += ["--ro-bind-try", name, name]
        for bind in binds:
            argv += _parents(bind) + ["--ro-bind", str(bind), str(bind)]
        for hidden in _hidden_site_packages(binds):
            argv += ["--tmpfs", str(hidden), "--remount-ro", str(hidden)]
        argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        if workdir is not None:
            argv += ["--bind", str(workdir), INSIDE_WORKDIR, "--chdir", INSIDE_WORKDIR]
        argv += ["--clearenv"]
        for key, value in self.environment(program, home=INSIDE_WORKDIR, path=path).items():
            argv += ["--setenv", key, value]
        argv += ["--"]
        if as_root:
            argv += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all"]
            argv += ["--bounding-set=-all", "--"]
        argv += ["prlimit", *prlimit_argv(program.limits), "--", *program.argv]
        return argv


def python_prefix() -> Path:
    """The interpreter's installation (not a venv: venvs hold the project's packages)."""
    return Path(sys.base_prefix).resolve()


def _hidden_site_packages(binds: list[Path]) -> list[Path]:
    """The bound Python prefix's site-packages, shown empty inside the sandbox.

    The service host's interpreter carries whatever was pip-installed into it, including ``.pth`` files that
    every interpreter start executes (here one imported certifi, half of a sandboxed ``python3``'s 300 ms start
    under load). Programs get the standard library; libraries come from a venv in the read-only paths, whose
    own site-packages stays visible. An interpreter living in /usr keeps its dist-packages (part of /usr).
    """
    prefix = python_prefix()
    if prefix not in binds:
        return []
    names = {"base": str(prefix), "platbase": str(prefix)}
    paths = {Path(sysconfig.get_path(key, "posix_prefix", vars=names)) for key in ("purelib", "platlib")}
    return sorted(path for path in paths if path.is_dir() and prefix in path.parents)


def _read_only_paths(extra: tuple[Path, ...]) -> list[Path]:
    """The Python prefix and ``extra``, resolved, without what /usr already shows, deduplicated."""
    seen: list[Path] = []
    for path in (python_prefix(), *(Path(p).resolve() for p in extra)):
        if path == Path("/usr") or Path("/usr") in path.parents or path in seen:
            continue
        seen.append(path)
    return seen


def _parents(path: Path) -> list[str]:
    """Directories above a bind, made traversable (bwrap would copy /root's 0700 and lock the program out)."""
    argv: list[str] = []
    for parent in reversed(path.parents[:-1]):
        argv += ["--perms", "0755", "--dir", str(parent)]
    return argv
