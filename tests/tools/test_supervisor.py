"""The supervisor of ``tools/bootstrap.py serve``/``demo``: what dies is started again, with back-off."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.conftest import wait_for
from tools.bootstrap import RESTART_FIRST_DELAY, Processes


def supervisor(tmp_path: Path) -> Processes:
    return Processes({**os.environ, "IDDS_VAR_DIR": str(tmp_path)})


def test_a_child_that_keeps_dying_is_started_again_later_each_time(tmp_path: Path, capsys) -> None:
    # given a child that exits at once
    processes = supervisor(tmp_path)
    processes.start("dies", sys.executable, "-c", "raise SystemExit(3)")
    (child,) = processes.children
    first_pid = child.process.pid

    # when the supervisor keeps watching
    try:
        wait_for(lambda: processes.supervise_once() or child.restarts >= 2, timeout=60, what="two restarts")
    finally:
        processes.stop()

    # then it was started again, each pause longer than the last, and every death was logged
    assert child.process.pid != first_pid
    assert child.delay >= 4 * RESTART_FIRST_DELAY
    out = capsys.readouterr().out
    assert out.count("dies (pid") >= 2
    assert "exited with 3; restarting in 1s" in out
    assert "exited with 3; restarting in 2s" in out


def test_a_healthy_child_is_left_alone_and_stopped_with_the_rest(tmp_path: Path) -> None:
    # given a child that keeps running
    processes = supervisor(tmp_path)
    processes.start("sleeps", sys.executable, "-c", "import time; time.sleep(60)")
    (child,) = processes.children
    pid = child.process.pid

    # when the supervisor looks a few times, then stops everything
    for _ in range(5):
        processes.supervise_once()
    processes.stop()

    # then it was never restarted, and it is gone
    assert (child.process.pid, child.restarts) == (pid, 0)
    assert child.process.poll() is not None
    assert (tmp_path / "sleeps.log").exists()
