"""kombu's filesystem transport (the embedded demo's broker) with messages written atomically.

kombu writes a message straight into its final file name, so a worker listing the folder between
the producer's ``open`` and ``write`` moves away an empty file: it then fails to parse it
("Unrecoverable error: JSONDecodeError") and stops, and the message is lost (seen in the demo,
celery/kombu 5.7). Here the message is written under a name the consumer does not match and
renamed into place, which is atomic within one folder, so a consumer sees whole messages only.
Selected in settings with ``CELERY_BROKER_TRANSPORT`` for ``filesystem://`` URLs.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

#: Appended to a message file's name while it is written; the consumer matches ``.<queue>.msg`` only.
WRITING_SUFFIX = ".writing"


class Channel(filesystem.Channel):
    """A filesystem channel whose messages appear in the folder whole or not at all."""

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        # kombu's own name (millisecond clock first: consumers take files in name order).
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        writing = final + WRITING_SUFFIX
        try:
            with open(writing, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(writing, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
