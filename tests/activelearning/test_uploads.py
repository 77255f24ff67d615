"""Sandbox tarball uploads: checked, checksummed, stored once under IDDS_SANDBOX_UPLOAD_DIR, downloadable."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from activelearning.models import Upload

pytestmark = pytest.mark.django_db

URL = "/api/v1/activelearning/uploads/"


def _tar(members: dict[str, bytes], *, link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo("link")
            info.type, info.linkname = tarfile.SYMTYPE, link
            tar.addfile(info)
    return buffer.getvalue()


def _post(api, data: bytes, name: str = "prog.tar.gz"):
    return api.post(URL, {"file": SimpleUploadedFile(name, data)}, format="multipart")


def test_an_upload_is_stored_with_its_checksum_and_can_be_downloaded(api, sandbox_dirs):
    # given
    data = _tar({"decide.py": b"print(1)"})

    # when
    response = _post(api, data)

    # then
    assert response.status_code == 201, response.content
    sha = hashlib.sha256(data).hexdigest()
    assert response.json() | {"created_at": None} == {
        "name": f"al/{sha}.tar.gz",
        "original_name": "prog.tar.gz",
        "sha256": sha,
        "size": len(data),
        "members": 1,
        "created_at": None,
    }
    assert (sandbox_dirs / "al" / f"{sha}.tar.gz").read_bytes() == data
    download = api.get(f"{URL}{sha}/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == data
    assert _post(api, data).status_code == 201
    assert Upload.objects.count() == 1


@pytest.mark.parametrize(
    ("data", "name", "says"),
    [
        (_tar({"../evil.py": b"x"}), "p.tar.gz", "outside the working directory"),
        (_tar({"/etc/cron.d/x": b"x"}), "p.tar.gz", "outside the working directory"),
        (_tar({"a.py": b"x"}, link="/etc/passwd"), "p.tar.gz", "is a link"),
        (b"not a tarball at all", "p.tar.gz", "not a readable tar archive"),
        (_tar({"a.py": b"x"}), "p.zip", "must end with one of"),
    ],
    ids=["dotdot", "absolute", "symlink", "garbage", "wrong-name"],
)
def test_a_dangerous_or_broken_tarball_is_refused(api, sandbox_dirs, data, name, says):
    # when
    response = _post(api, data, name)

    # then
    assert response.status_code == 400
    assert says in " ".join([response.json()["error"], *response.json().get("errors", {}).values()])
    assert not Upload.objects.exists()
    assert list((sandbox_dirs / "al").iterdir()) == [] if (sandbox_dirs / "al").exists() else True


def test_a_tarball_over_the_size_limit_is_refused(api, settings):
    # given
    settings.IDDS_AL_UPLOAD_MAX_MB = 1

    # when
    response = _post(api, b"\0" * (2**20 + 1))

    # then
    assert response.status_code == 400
    assert "at most 1 MB" in response.json()["errors"]["file"]


def test_another_users_upload_cannot_be_downloaded(api, other_api):
    # given
    sha = _post(api, _tar({"a.py": b"x"})).json()["sha256"]

    # when
    response = other_api.get(f"{URL}{sha}/")

    # then
    assert response.status_code == 404
