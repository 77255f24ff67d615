"""The embedded broker's transport: a consumer only ever sees whole messages."""

from __future__ import annotations

import pytest
from kombu import Connection
from kombu.transport.virtual.base import Empty

from idds_site.filesystem_transport import WRITING_SUFFIX, Transport


@pytest.fixture
def channel(tmp_path):
    folders = {name: tmp_path / name for name in ("queue", "processed", "control")}
    for folder in folders.values():
        folder.mkdir()
    options = {
        "data_folder_in": str(folders["queue"]),
        "data_folder_out": str(folders["queue"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]),
    }
    with Connection("filesystem://", transport=Transport, transport_options=options) as connection:
        yield connection.default_channel, folders["queue"]


def test_a_message_is_in_the_folder_whole_and_under_kombus_name(channel):
    chan, queue_dir = channel

    chan._put("transformer", {"body": "x" * 10_000})

    (name,) = [p.name for p in queue_dir.iterdir()]
    assert name.endswith(".transformer.msg")
    assert chan._get("transformer") == {"body": "x" * 10_000}


def test_a_message_still_being_written_is_not_taken(channel):
    # given: a producer caught between creating its file and writing it
    chan, queue_dir = channel
    (queue_dir / f"1_abc.transformer.msg{WRITING_SUFFIX}").write_bytes(b"")

    # when / then: the consumer finds nothing to take (kombu's own name would have been taken, empty)
    with pytest.raises(Empty):
        chan._get("transformer")
