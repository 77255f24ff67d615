"""The reference consumer: drops repeats, records per workload, runs without Django."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from requests_app.sinks.stomp import StompSink
from tests.messaging.conftest import file_message, free_port
from tools.consumer import Delivery, Recorder, consume

ROOT = Path(__file__).resolve().parents[2]


def delivery(index: int, workload_id: int = 1) -> Delivery:
    message = file_message(index, files=2, workload_id=workload_id)
    return Delivery(message.msg_id, message.msg_type, message.body)


class ListSource:
    """Hands out prepared deliveries, one batch per receive (a stand-in for a broker)."""

    def __init__(self, batches: list[list[Delivery]]) -> None:
        self.batches = batches
        self.acked: list[str] = []

    def receive(self, timeout: float) -> list[Delivery]:
        return self.batches.pop(0) if self.batches else []

    def ack(self, deliveries) -> None:
        self.acked.extend(d.msg_id for d in deliveries)

    def close(self) -> None:
        pass


def test_it_drops_a_repeated_message_and_acknowledges_it_anyway(tmp_path):
    # given
    first, second = delivery(1), delivery(2, workload_id=2)
    source = ListSource([[first, second], [first]])

    # when
    summary = consume(source, Recorder(jsonl=tmp_path / "out.jsonl"), idle=0.5)

    # then
    assert summary["messages"] == 2
    assert summary["duplicates_dropped"] == 1
    assert summary["files_by_workload"] == {"1": 2, "2": 2}
    assert source.acked == [first.msg_id, second.msg_id, first.msg_id]


def test_it_remembers_ids_across_restarts_through_its_jsonl_file(tmp_path):
    # given: a first run recorded one message
    jsonl = tmp_path / "out.jsonl"
    first = delivery(1)
    consume(ListSource([[first]]), Recorder(jsonl=jsonl), count=1)

    # when: a second run gets it again (redelivered after a crash) plus a new one
    summary = consume(ListSource([[first, delivery(2)]]), Recorder(jsonl=jsonl), idle=0.5)

    # then
    assert summary["messages"] == 2
    assert summary["duplicates_dropped"] == 1
    assert len(jsonl.read_text().splitlines()) == 2


def test_it_imports_without_django():
    # given
    code = "import sys, tools.consumer; sys.exit('django' in sys.modules)"

    # when
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={"PATH": os.environ["PATH"]})

    # then
    assert result.returncode == 0


def test_its_command_line_receives_from_stomp_and_prints_a_summary(running_activemq, destination, tmp_path):
    # given: three messages waiting on a queue (a queue keeps them until somebody reads)
    queue = destination.replace("/topic/", "/queue/")
    sink = StompSink(hosts=[running_activemq.host_and_port], destination=queue, user="", password="")
    messages = [file_message(i, files=4) for i in range(3)]
    assert len(sink.send(messages).delivered) == 3
    sink.close()
    jsonl = tmp_path / "released.jsonl"

    # when: the consumer runs as a workload system would run it
    command = [sys.executable, "-m", "tools.consumer", "--stomp", running_activemq.host_and_port]
    command += ["--destination", queue, "--jsonl", str(jsonl), "--count", "3", "--idle", "60"]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120, env={"PATH": os.environ["PATH"]}
    )

    # then
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["messages"] == 3
    assert summary["files"] == 12
    assert "file_stagein workload=777" in result.stdout
    assert [json.loads(line)["msg_id"] for line in jsonl.read_text().splitlines()] == [m.msg_id for m in messages]


def test_its_command_line_says_where_it_could_not_subscribe():
    # given
    address = f"127.0.0.1:{free_port()}"

    # when
    result = subprocess.run(
        [sys.executable, "-m", "tools.consumer", "--stomp", address],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"]},
    )

    # then
    assert result.returncode == 2
    assert f"cannot subscribe at {address}" in result.stderr
