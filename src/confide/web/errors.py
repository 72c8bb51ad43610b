"""The one place that maps domain errors to HTTP statuses (and, for pages, to the error page)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from confide.errors import (
    AuthenticationFailed,
    ConfideError,
    Conflict,
    Forbidden,
    InvalidInput,
    InvalidState,
    LockedOut,
    NotFound,
    RateLimited,
)

STATUS: list[tuple[type[ConfideError], int]] = [
    (LockedOut, 429),
    (AuthenticationFailed, 401),
    (InvalidInput, 422),
    (NotFound, 404),
    (Forbidden, 403),
    (InvalidState, 409),
    (Conflict, 409),
    (RateLimited, 429),
]

TITLES = {
    400: "Bad request",
    401: "Please sign in",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed",
    409: "Conflict",
    422: "Please check your input",
    429: "Too many requests",
    500: "Something went wrong",
}


def status_for(exc: ConfideError) -> int:
    for kind, status in STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def _wants_html(request: Request) -> bool:
    path = request.url.path
    return path.startswith(("/console", "/demo", "/widget/", "/portal", "/privacy", "/newsletter"))


def _render(request: Request, status: int, detail: str, code: str) -> Response:
    if _wants_html(request):
        templates = request.app.state.templates
        page: Response = templates.TemplateResponse(
            request,
            "console/error.html",
            {
                "status": status,
                "title": TITLES.get(status, "Error"),
                "detail": detail,
                "user": None,
                "csrf_token": "",
                "csp_nonce": request.state.csp_nonce,
            },
            status_code=status,
        )
        return page
    return JSONResponse({"detail": detail, "code": code}, status_code=status)


def _reason(err: Any) -> str:
    """One validation error in words: ``name: Field required``; a body that is not a JSON
    object says so plainly (``: Input should be a valid dictionary`` helped nobody)."""
    where = ".".join(str(p) for p in err["loc"] if p != "body")
    kind = str(err.get("type", ""))
    if not where and kind in ("dict_type", "model_attributes_type", "missing"):
        return "The body must be a JSON object (Content-Type: application/json)."
    if kind == "json_invalid":
        return f"The body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})."
    return f"{where}: {err['msg']}" if where else str(err["msg"])


def http_code(exc: ConfideError) -> str:
    """The error's code for an HTTP answer: the protocol's ``bad_frame`` (a frame the socket
    could not use) reads as ``invalid_input`` over HTTP, where there are no frames."""
    return "invalid_input" if exc.code == "bad_frame" else exc.code


def install(app: FastAPI) -> None:
    @app.exception_handler(ConfideError)
    async def _domain(request: Request, exc: ConfideError) -> Response:
        response = _render(request, status_for(exc), exc.message, http_code(exc))
        if isinstance(exc, RateLimited) and exc.retry_after_s:
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "Error")
        response = _render(request, exc.status_code, detail, "http_error")
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        reasons = [_reason(err) for err in exc.errors()]
        return JSONResponse(
            {
                "detail": "; ".join(reasons) or "Invalid request.",
                "code": "bad_request",
                "errors": [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()],
            },
            status_code=422,
        )
