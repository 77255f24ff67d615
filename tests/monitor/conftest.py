"""Tests with a real worker end what they left running before the database is flushed (an HPO study
still generating deadlocked the flush's TRUNCATE): the active-learning tests' fixture, reused."""

from tests.activelearning.conftest import stop_live_loops  # noqa: F401 — an autouse fixture for this folder
