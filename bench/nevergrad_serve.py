"""The nevergrad runner's ``propose`` as a line-per-generation server, for bench/hpo_quality.py only.

Runs with the nevergrad venv's interpreter (``python -I bench/nevergrad_serve.py``): each line on stdin is one
generation's input document (the runner's %IN), each line on stdout the points it proposes (the runner's %OUT).
A study run by the service starts one sandboxed runner per generation (several seconds of interpreter start and
imports on a loaded machine); the benchmark asks the same code hundreds of times, so it keeps one interpreter
for all of them instead. The proposals are the same: ``propose`` rebuilds the optimiser from the history each time.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hpo" / "runners"))

import numpy as np  # noqa: E402
from nevergrad_runner import propose  # noqa: E402


def serve() -> None:
    """Answer every input line with one output line; nevergrad's own prints go to stderr."""
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr
    for line in sys.stdin:
        if line.strip():
            doc = json.loads(line)
            # The global generator too, for optimisers that draw from it: one interpreter serves many studies,
            # and a generation must not depend on what the one before it drew.
            np.random.seed([int(doc.get("nevergrad", {}).get("seed", 0)), len(doc["points"])])
            answers.write(json.dumps(propose(doc)) + "\n")
            answers.flush()


if __name__ == "__main__":
    # As in the runner: some optimisers leave helper threads that never end; leave with os._exit.
    try:
        serve()
    finally:
        sys.stderr.flush()
        os._exit(0)
