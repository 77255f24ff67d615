"""The served schema says what the server does: nullable owner, enums with names, the errors it answers."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(anon_api) -> dict:
    response = anon_api.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def component(schema: dict, name: str) -> dict:
    return schema["components"]["schemas"][name]


def test_owner_is_nullable(schema):
    assert component(schema, "Request")["properties"]["owner"]["nullable"] is True


def test_request_type_is_written_as_a_served_integer_or_its_name_and_read_as_a_name(schema, settings):
    written = component(schema, "RequestCreate")["properties"]["request_type"]
    read = component(schema, "Request")["properties"]["request_type"]

    served = sorted(int(value) for value in settings.IDDS_WORK_TYPES)
    assert written["oneOf"][0] == {"type": "integer", "enum": served}
    assert "StageIn" in written["oneOf"][1]["enum"]
    assert "2 StageIn" in written["description"]
    assert read == {"$ref": "#/components/schemas/RequestTypeName"}
    assert "Other" in component(schema, "RequestTypeName")["enum"]


def test_status_is_read_as_a_name_with_the_values_described(schema):
    status = component(schema, "RequestStatusName")

    assert status["type"] == "string"
    assert "Finished" in status["enum"]
    assert "3 Finished" in status["description"]


def test_a_request_body_refuses_unknown_fields_as_the_server_does(schema):
    assert component(schema, "RequestCreate")["additionalProperties"] is False


def test_every_operation_documents_the_errors_it_can_answer(schema):
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    missing = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            expected = {"401", "403"}
            if "requestBody" in operation or any(p["in"] == "query" for p in operation.get("parameters", [])):
                expected.add("400")
            if "requestBody" in operation:
                expected.add("415")
            if "{" in path:
                expected.add("404")
                if method == "post":
                    expected.add("409")
            for code in expected:
                if operation["responses"].get(code, {}).get("content") != error:
                    missing.append(f"{method.upper()} {path} {code}")
    assert missing == []
    assert component(schema, "Error")["required"] == ["error"]


def test_a_created_request_links_to_its_detail_and_verbs(schema):
    links = schema["paths"]["/api/v1/requests/"]["post"]["responses"]["201"]["links"]

    assert {"GetRequest", "AbortRequest", "RequestEvents"} <= set(links)
    assert links["AbortRequest"]["parameters"] == {"id": "$response.body#/request_id"}
