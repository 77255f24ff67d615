"""What the OpenAPI schema says beyond what drf-spectacular infers, so that it matches the server.

- ``ChoiceField``: responses carry the name (a string enum); requests take the integer value or
  the name, and the description lists which value is which name.
- Every operation documents the errors it can answer, in one ``Error`` component: 401/403 where
  authentication is required, 400 where a body or query parameters are read, 404 where the path
  names an object (or a cursor the server did not write), 409 where a write on an object can
  conflict with its state, 415 where a JSON body is read. They are added by method and kind here
  (a postprocessing hook), so a new view cannot forget them.
- ``CharField`` inputs that may not be blank: minLength 1 and a non-whitespace character.
- Links from a created request to its detail and verbs, which drive the stateful fuzzing phase.
"""

from __future__ import annotations

import sys
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent

from .fields import choices_description

ERROR_COMPONENT = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error answer: what is wrong and how to fix it; `errors` names each faulty field.",
    "properties": {
        "error": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "field (dotted JSON path) -> what is wrong with it",
        },
        "error_id": {
            "type": "string",
            "format": "uuid",
            "description": "on an internal error only: the id under which the server logged it",
        },
    },
    "required": ["error"],
}
ERROR_DESCRIPTIONS = {
    "400": "Invalid input: malformed or unsafe JSON, a field or query parameter out of range (`errors` names it).",
    "401": "No valid credentials (send `Authorization: Token <key>`).",
    "403": "Authenticated, but not allowed to do this.",
    "404": "No such object, the path does not name one, or the cursor is not one the server gave.",
    "409": "The object's current state does not allow this (e.g. an illegal status transition).",
    "415": "The body is not `application/json`.",
}
WRITE_METHODS = {"post", "put", "patch", "delete"}
# Request bodies whose serializer refuses unknown fields (RequestCreateSerializer.KNOWN).
CLOSED_COMPONENTS = ("RequestCreate",)

# Operations reachable from a created request, with the parameter that carries its id.
REQUEST_LINKS = {
    "GetRequest": ("/api/v1/requests/{id}/", "get"),
    "RequestEvents": ("/api/v1/requests/{id}/events/", "get"),
    "AbortRequest": ("/api/v1/requests/{id}/abort/", "post"),
    "SuspendRequest": ("/api/v1/requests/{id}/suspend/", "post"),
    "ResumeRequest": ("/api/v1/requests/{id}/resume/", "post"),
    "RetryRequest": ("/api/v1/requests/{id}/retry/", "post"),
    "FinishRequest": ("/api/v1/requests/{id}/finish/", "post"),
}


# What str.strip() removes: a required CharField (trim_whitespace) refuses a value made only of these.
_STRIPPED = "".join(char for char in map(chr, range(sys.maxunicode + 1)) if char.isspace())
NOT_ONLY_WHITESPACE = f"[^{_STRIPPED}]"


class CharFieldExtension(OpenApiSerializerFieldExtension):
    """DRF's CharField as inferred, plus, for inputs that may not be blank: at least one character, and
    one that is not whitespace when the field trims it. (Outputs may be blank: no such constraint.)"""

    target_class = "rest_framework.fields.CharField"

    def map_serializer_field(self, auto_schema, direction: str) -> dict[str, Any]:
        field = self.target
        schema = auto_schema._map_serializer_field(field, direction, bypass_extensions=True)
        if direction == "request" and not field.allow_blank:
            schema.setdefault("minLength", 1)
            if field.trim_whitespace and "pattern" not in schema:
                schema["pattern"] = NOT_ONLY_WHITESPACE
        return schema


class ChoiceFieldExtension(OpenApiSerializerFieldExtension):
    """``requests_app.api.fields.ChoiceField``: names out, values or names in."""

    target_class = "requests_app.api.fields.ChoiceField"

    def map_serializer_field(self, auto_schema, direction: str) -> dict[str, Any]:
        field = self.target
        enum = field.choices_enum
        if direction == "response":
            # One named component per choice set ("RequestStatusName"), shared by every field using it.
            component = ResolvedComponent(
                name=f"{enum.__name__}Name",
                type=ResolvedComponent.SCHEMA,
                object=enum,
                schema={
                    "type": "string",
                    "enum": [member.label for member in enum],
                    "description": f"the name; values: {choices_description(enum)}",
                },
            )
            auto_schema.registry.register_on_missing(component)
            return component.ref
        values = field.writable_values()
        return {
            "oneOf": [
                {"type": "integer", "enum": values},
                {"type": "string", "enum": [enum(value).label for value in values]},
            ],
            "description": f"the integer value or the name: {choices_description(enum)}",
        }


def add_error_responses(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the Error component, error answers, request links."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components[ERROR_COMPONENT] = ERROR_SCHEMA
    for name in CLOSED_COMPONENTS:
        if name in components:
            components[name]["additionalProperties"] = False
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            for code in _error_codes(path, method, operation):
                _document_error(operation, code)
    _add_request_links(result)
    return result


def _error_codes(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    codes = []
    query_parameters = [p for p in operation.get("parameters", []) if p.get("in") == "query"]
    if "requestBody" in operation or query_parameters:
        codes.append("400")
    if "requestBody" in operation:
        codes.append("415")
    # An operation open to anonymous callers lists an empty requirement.
    if operation.get("security") and {} not in operation["security"]:
        codes += ["401", "403"]
    # A cursor the server did not write names no page (DRF's answer).
    if "{" in path or any(p["name"] == "cursor" for p in query_parameters):
        codes.append("404")
    if "{" in path and method in WRITE_METHODS:
        codes.append("409")
    return codes


def _document_error(operation: dict[str, Any], code: str) -> None:
    responses = operation.setdefault("responses", {})
    existing = responses.get(code)
    # A view may describe an error in its own words; the shape is always the Error component.
    description = (existing or {}).get("description") or ERROR_DESCRIPTIONS[code]
    responses[code] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}},
    }


def _add_request_links(result: dict[str, Any]) -> None:
    created = result["paths"].get("/api/v1/requests/", {}).get("post", {}).get("responses", {}).get("201")
    if created is None:
        return
    created["links"] = {
        name: {
            "operationId": result["paths"][path][method]["operationId"],
            "parameters": {"id": "$response.body#/request_id"},
        }
        for name, (path, method) in REQUEST_LINKS.items()
        if method in result["paths"].get(path, {})
    }
