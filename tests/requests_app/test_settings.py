"""Settings fail fast, naming the variable, when a value is malformed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings


def load_settings(**env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**environment, "DJANGO_SETTINGS_MODULE": "idds_site.settings"},
        capture_output=True,
        text=True,
        cwd=settings.BASE_DIR,
    )


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
        ({"IDDS_CLAIM_SECONDS": "ten"}, "IDDS_CLAIM_SECONDS='ten' is not an integer"),
        ({"IDDS_CLAIM_SECONDS": "0"}, "must be at least 1"),
        ({"IDDS_MESSAGE_SINKS": "db,pigeon"}, "unknown sink 'pigeon'"),
        ({"DATABASE_URL": "nonsense"}, "DATABASE_URL"),
        ({"IDDS_EXTRA_WORK_TYPES": "99"}, "not of the form key=value"),
        ({"SECRET_KEY_FILE": "/nonexistent/idds-key"}, "SECRET_KEY_FILE='/nonexistent/idds-key' cannot be read"),
    ],
)
def test_a_malformed_value_stops_start_up_with_its_name(env, words):
    result = load_settings(**env)

    assert result.returncode != 0
    assert words in result.stderr


def test_nothing_set_gives_the_embedded_default(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings as s; "
            "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL)",
        ],
        env={
            **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}},
            "DJANGO_SETTINGS_MODULE": "idds_site.settings",
            "IDDS_VAR_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        cwd=settings.BASE_DIR,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.sqlite3", "filesystem://"]


def test_a_secret_is_read_from_its_file_form(tmp_path):
    # given
    key_file = tmp_path / "key"
    key_file.write_text("from-the-file\n")

    # when
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings as s; print(s.SECRET_KEY)",
        ],
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "idds_site.settings",
            "SECRET_KEY": "from-the-variable",
            "SECRET_KEY_FILE": str(key_file),
        },
        capture_output=True,
        text=True,
        cwd=settings.BASE_DIR,
    )

    # then: the file wins, stripped of its newline
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "from-the-file"
