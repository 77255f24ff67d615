"""Exceptions the service raises on purpose; the API maps each to its HTTP status."""

from __future__ import annotations


class ApplicationError(Exception):
    """A refused operation with a message for the caller (HTTP 400 unless a subclass says)."""

    http_status = 400

    def __init__(self, message: str, *, extra: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class IllegalTransition(ApplicationError):
    """A status change that the transition table does not allow (HTTP 409)."""

    http_status = 409


class ConflictError(ApplicationError):
    """The operation conflicts with the current state (HTTP 409)."""

    http_status = 409


class NotFoundError(ApplicationError):
    http_status = 404


class WorkTypeValidationError(ApplicationError):
    """Bad request parameters: ``errors`` maps each field (dotted path) to what is wrong with it."""

    def __init__(self, errors: dict[str, str] | str) -> None:
        if isinstance(errors, str):
            errors = {"request_metadata": errors}
        self.errors = errors
        text = "; ".join(f"{field}: {problem}" for field, problem in errors.items())
        super().__init__(f"invalid request: {text}", extra={"errors": errors})


class TransientError(Exception):
    """An outside system failed in a way worth retrying (timeout, 5xx, broker down)."""


class PermanentError(Exception):
    """An outside system refused for good: the processing fails with this reason."""
