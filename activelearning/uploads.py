"""Sandbox tarballs uploaded for decision programs: checked, checksummed and stored under IDDS_SANDBOX_UPLOAD_DIR.

A tarball is refused when it is too large, is not a tar archive, or holds a member that could land outside the
working directory it is unpacked into (absolute paths, ``..``, links, devices). It is stored once per content, as
``al/<sha256><suffix>``: that name is what a request's ``sandbox`` names.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import tarfile
import tempfile
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import transaction

from activelearning.models import Upload
from requests_app import sandbox
from requests_app.errors import ApplicationError

#: Sub-directory of IDDS_SANDBOX_UPLOAD_DIR holding this work type's uploads.
UPLOAD_SUBDIR = "al"
MAX_MEMBERS = 10_000


def _suffix(name: str) -> str:
    # Longest first: ".tar.gz" before ".tar"... which ".gz" names never match, but order keeps it obvious.
    for suffix in sorted(sandbox.TARBALL_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return ""


def _member_problem(member: tarfile.TarInfo) -> str | None:
    normal = posixpath.normpath(member.name)
    if posixpath.isabs(member.name) or normal == ".." or normal.startswith("../"):
        return f"member {member.name!r} would land outside the working directory"
    if member.issym() or member.islnk():
        return f"member {member.name!r} is a link; links are refused"
    if not (member.isfile() or member.isdir()):
        return f"member {member.name!r} is not a regular file or directory"
    return None


def _check_tarball(path: Path) -> int:
    """The number of members, or ApplicationError naming the problem."""
    try:
        with tarfile.open(path) as tar:
            members = tar.getmembers()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ApplicationError("the file is not a readable tar archive", extra={"errors": {"file": str(exc)}}) from None
    if len(members) > MAX_MEMBERS:
        raise ApplicationError("too many members", extra={"errors": {"file": f"at most {MAX_MEMBERS} members"}})
    for member in members:
        if problem := _member_problem(member):
            raise ApplicationError(f"refused: {problem}", extra={"errors": {"file": problem}})
    return len(members)


def upload_store(*, stream: IO[bytes], original_name: str, owner) -> Upload:
    """Check and store an uploaded tarball (once per content); return its record."""
    suffix = _suffix(original_name)
    if not suffix:
        raise ApplicationError(
            "not a tarball name",
            extra={"errors": {"file": f"the name must end with one of {list(sandbox.TARBALL_SUFFIXES)}"}},
        )
    limit = settings.IDDS_AL_UPLOAD_MAX_MB * 2**20
    root = Path(settings.IDDS_SANDBOX_UPLOAD_DIR) / UPLOAD_SUBDIR
    root.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    handle, temporary = tempfile.mkstemp(dir=root, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            for block in iter(lambda: stream.read(1 << 20), b""):
                size += len(block)
                if size > limit:
                    raise ApplicationError(
                        "file too large", extra={"errors": {"file": f"at most {settings.IDDS_AL_UPLOAD_MAX_MB} MB"}}
                    )
                digest.update(block)
                out.write(block)
        members = _check_tarball(Path(temporary))
        sha256 = digest.hexdigest()
        name = f"{UPLOAD_SUBDIR}/{sha256}{suffix}"
        os.replace(temporary, Path(settings.IDDS_SANDBOX_UPLOAD_DIR) / name)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    with transaction.atomic():
        upload, _ = Upload.objects.get_or_create(
            sha256=sha256,
            defaults={
                "name": name,
                "original_name": original_name[:255],
                "size": size,
                "members": members,
                "owner": owner,
            },
        )
    return upload
