"""The API's JSON parser: size limit first, then a body checked for what the database cannot store."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from .json_body import MalformedJSON, UnsafeJSON, load_body


class PayloadTooLarge(ParseError):
    default_detail = "payload too large"


class UnsafeJSONError(ParseError):
    """A parsed body with a value that cannot be accepted; ``errors`` names it by its JSON path."""

    def __init__(self, error: UnsafeJSON) -> None:
        super().__init__(f"invalid JSON body: {error}")
        self.errors = {error.path: error.problem}


class StrictJSONParser(JSONParser):
    """Refuses bodies over ``IDDS_MAX_PAYLOAD_BYTES`` unread, malformed JSON with where it breaks, and
    bodies nested too deep or holding NUL, lone surrogates or non-finite numbers with the value's path."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        limit = settings.IDDS_MAX_PAYLOAD_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(
                f"payload is larger than the limit of {limit} bytes; split it or raise IDDS_MAX_PAYLOAD_BYTES"
            )
        if not raw:
            return {}
        try:
            return load_body(raw)
        except MalformedJSON as exc:
            raise ParseError(str(exc)) from None
        except UnsafeJSON as exc:
            raise UnsafeJSONError(exc) from None
