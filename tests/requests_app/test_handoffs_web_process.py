"""Hand-offs from a process that never started a worker (gunicorn, a management command)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from idds_site.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import django
django.setup()
from celery import current_app
from requests_app.handoffs import TaskName, send_now
assert TaskName.WATCHDOG_SWEEP not in current_app.tasks, "the task modules were imported already"
send_now(TaskName.WATCHDOG_SWEEP)
print("sent")
"""


def test_a_web_process_hands_off_by_name_before_any_task_module_was_imported():
    # given: a fresh interpreter with Django set up, as a gunicorn worker has
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "idds_site.settings"}

    # when
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    # then: the task was found and sent (it was a NotRegistered error before)
    celery_app.control.purge()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sent"
