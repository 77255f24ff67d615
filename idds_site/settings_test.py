"""Test settings: the production settings plus a fast password hasher.

The suite runs on real PostgreSQL and Redis: DATABASE_URL and REDIS_URL must point at them
(``python3 tools/bootstrap.py test`` sets both and starts the servers when needed).
"""

from __future__ import annotations

from .settings import *  # noqa: F403
from .settings import DATABASES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    raise RuntimeError(
        "The test suite runs against PostgreSQL: set DATABASE_URL=postgres://... "
        "or run `python3 tools/bootstrap.py test`, which does it for you."
    )
# Tests create the connection per test; a persistent one would outlive the test database.
DATABASES["default"]["CONN_MAX_AGE"] = 0
IDDS_WORK_TYPES = IDDS_WORK_TYPES | {"99": "tests.worktypes.CountdownWorkType"}  # noqa: F405
