"""The OpenAPI description is complete: every route documented with its errors and examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sync_server.config import Settings
from sync_server.main import create_app


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    db = Path(tmp_path_factory.mktemp("openapi")) / "hq.db"
    app = create_app(Settings(db_url=f"sqlite:///{db}", admin_token="a" * 20))
    return app.openapi()


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, ops in spec["paths"].items() for m, op in ops.items()]


def test_every_route_has_a_summary_and_documented_errors(spec: dict[str, Any]) -> None:
    for method, path, op in operations(spec):
        assert op.get("summary"), f"{method} {path} has no summary"
        codes = set(op["responses"])
        if path.startswith("/api/v1/"):
            takes_input = bool(op.get("parameters") or op.get("requestBody"))
            needed = {"401", "422"} if takes_input else {"401"}
            assert needed <= codes, f"{method} {path} documents {sorted(codes)}"
            for code in codes - {"200"}:
                schema = op["responses"][code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, code)


def test_admin_routes_document_403(spec: dict[str, Any]) -> None:
    for method, path, op in operations(spec):
        if path.startswith("/api/v1/admin") or (path == "/api/v1/customers/{customer_id}"):
            assert "403" in op["responses"], f"{method} {path}"


def test_sync_routes_have_examples_and_their_specific_errors(spec: dict[str, Any]) -> None:
    push = spec["paths"]["/api/v1/sync/push"]["post"]
    assert {"409", "413", "507"} <= set(push["responses"])
    body = push["requestBody"]["content"]["application/json"]
    assert body["examples"]["event"]["value"]["ops"][0]["type"] == "event"
    pull = spec["paths"]["/api/v1/sync/pull"]["get"]
    assert "409" in pull["responses"]
    example = pull["responses"]["200"]["content"]["application/json"]["example"]
    assert example["changes"][1]["reason"] == "merged"
