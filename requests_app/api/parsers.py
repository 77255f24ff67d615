"""A JSON parser whose errors say where the JSON is broken and which enforces the size limit."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class PayloadTooLarge(ParseError):
    default_detail = "payload too large"


class StrictJSONParser(JSONParser):
    """Refuses bodies over ``IDDS_MAX_PAYLOAD_BYTES`` before parsing them, and explains bad JSON."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        limit = settings.IDDS_MAX_PAYLOAD_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(
                f"payload is larger than the limit of {limit} bytes; split it or raise IDDS_MAX_PAYLOAD_BYTES"
            )
        try:
            return json.loads(raw.decode("utf-8")) if raw else {}
        except UnicodeDecodeError:
            raise ParseError("body is not UTF-8 encoded JSON") from None
        except json.JSONDecodeError as exc:
            raise ParseError(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
