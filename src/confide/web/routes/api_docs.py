"""``/api/docs``: the HTTP API, read from the OpenAPI description and rendered on the server.

FastAPI's Swagger UI loads its script from a CDN and runs inline code, which our Content
Security Policy refuses (and a server without internet access could not fetch): the page was
blank. This page needs no script at all and cannot drift from ``/openapi.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

router = APIRouter(include_in_schema=False)

_METHODS = ("get", "post", "put", "patch", "delete")


@dataclass
class Operation:
    method: str
    path: str
    summary: str
    description: str
    parameters: list[dict[str, str]]
    body: str | None
    responses: list[tuple[str, str]]


@dataclass
class Group:
    name: str
    operations: list[Operation] = field(default_factory=list)


def _type_of(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_type_of(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_type_of(schema.get('items', {}))}"
    return str(schema.get("type", "any"))


def _body(op: dict[str, Any]) -> str | None:
    content = op.get("requestBody", {}).get("content", {})
    if not content:
        return None
    kind, spec = next(iter(content.items()))
    return f"{_type_of(spec.get('schema', {}))} ({kind})"


def _group_of(path: str, op: dict[str, Any]) -> str:
    if op.get("tags"):
        return str(op["tags"][0])
    parts = [p for p in path.split("/") if p and not p.startswith("{")]
    if parts[:1] == ["api"]:
        parts = parts[1:]
    return (parts[0] if parts else "service").replace("-", " ").replace("_", " ").capitalize()


def groups(spec: dict[str, Any]) -> list[Group]:
    """Operations grouped by tag (else by the path's first segment), in path order."""
    by_name: dict[str, Group] = {}
    for path, item in spec.get("paths", {}).items():
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            name = _group_of(path, op)
            group = by_name.setdefault(name, Group(name))
            group.operations.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    summary=str(op.get("summary", "")),
                    description=str(op.get("description", "")).split("\n\n", 1)[0],
                    parameters=[
                        {
                            "name": str(p.get("name")),
                            "in": str(p.get("in")),
                            "required": "required" if p.get("required") else "optional",
                            "type": _type_of(p.get("schema", {})),
                        }
                        for p in op.get("parameters", [])
                    ],
                    body=_body(op),
                    responses=[
                        (str(code), str(r.get("description", "")))
                        for code, r in op.get("responses", {}).items()
                    ],
                )
            )
    return sorted(by_name.values(), key=lambda g: g.name.lower())


@router.get("/api/docs", response_class=HTMLResponse)
async def api_docs(request: Request) -> Response:
    spec = request.app.openapi()
    page: Response = request.app.state.templates.TemplateResponse(
        request,
        "api_docs.html",
        {
            "title": spec.get("info", {}).get("title", "API"),
            "version": spec.get("info", {}).get("version", ""),
            "groups": groups(spec),
            "csp_nonce": request.state.csp_nonce,
        },
    )
    return page
