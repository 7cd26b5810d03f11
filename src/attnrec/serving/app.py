"""The FastAPI application: ``create_app(settings)``; nothing is loaded at import time.

Endpoints (shapes in ``docs/contracts.md`` and ``docs/serving.md``): ``GET /health``, ``GET /ready``, ``POST /events``,
``GET /users/{user_id}/history``, ``GET /users/{user_id}/recommendations``, ``POST /recommendations``,
``POST /admin/reload``, ``GET /metrics``, the web page for people at ``/`` and ``/web/...``
(:mod:`attnrec.serving.web`) and the OpenAPI schema at ``/openapi.json`` with its browsers ``/docs`` (Swagger UI)
and ``/redoc``, whose JavaScript and CSS are served from ``/docs-assets`` (files shipped by the
``fastapi-offline`` package), so the pages work without internet access.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator
from starlette.exceptions import HTTPException as StarletteHTTPException

from attnrec import __version__
from attnrec.errors import ConfigError
from attnrec.serving.auth import ApiKey, RateLimiter, extract_key, find_key, retry_after_header
from attnrec.serving.holder import LoadedModel, ModelLoadError
from attnrec.serving.middleware import BodyLimitMiddleware, MetricsMiddleware
from attnrec.serving.schemas import (
    ID_DESCRIPTION,
    MAX_ID_LENGTH,
    MAX_K,
    BatchRequest,
    BatchResponse,
    EventsRequest,
    EventsResponse,
    HistoryResponse,
    RecommendationResponse,
    ReloadRequest,
    ReloadResponse,
    StatusResponse,
    _printable,
)
from attnrec.serving.service import ModelNotReadyError, RecommendationService
from attnrec.serving.settings import ServeSettings
from attnrec.serving.store import StoreUnavailableError
from attnrec.serving.web import install_web

log = logging.getLogger("attnrec.serving")

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <API key>")

UserId = Annotated[
    str,
    Path(min_length=1, max_length=MAX_ID_LENGTH, description=ID_DESCRIPTION),
    AfterValidator(_printable),
]
"""The path's ``{user_id}``: the rules of :data:`attnrec.serving.schemas.Id` (length bounds and validator)."""

DOCS_ASSETS_URL = "/docs-assets"
DOCS_ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key (when keys are configured)."},
    403: {"description": "The key lacks the role this endpoint needs."},
    413: {"description": "Request body over the size limit."},
    422: {"description": "Malformed input; `detail` lists each field with its problem."},
    429: {"description": "Rate limit exceeded; see `Retry-After`."},
    503: {"description": "Model not loaded yet or event store unavailable; see `Retry-After`."},
}


class IdRoute(APIRoute):
    """An :class:`APIRoute` whose path parameters match every character, line breaks included.

    Starlette compiles ``{user_id:path}`` to ``.*`` without ``re.DOTALL`` and ends the pattern with ``$``, so
    ``/users/a%0Ab/recommendations`` (a newline in the id) matched no route and got 404 before the id validator
    could answer 422. Recompiled with ``re.DOTALL`` and anchored with ``\\Z``, the route matches and the id is
    refused by the same rule as in request bodies.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        pattern = self.path_regex.pattern
        pattern = pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern
        self.path_regex = re.compile(pattern, re.DOTALL)


def docs_assets_dir() -> FilePath:
    """The folder of Swagger UI and ReDoc files that the ``fastapi-offline`` package ships (``serve`` extra).

    Raises :class:`~attnrec.errors.ConfigError` when the package or one of :data:`DOCS_ASSET_FILES` is missing.
    """
    try:
        import fastapi_offline
    except ImportError:
        raise ConfigError(
            "the /docs and /redoc pages need the 'fastapi-offline' package (pip install 'attnrec[serve]'); "
            "it is not installed"
        ) from None
    folder = FilePath(fastapi_offline.__file__).parent / "static"
    missing = [name for name in DOCS_ASSET_FILES if not (folder / name).is_file()]
    if missing:
        raise ConfigError(f"{folder}: the docs assets {', '.join(missing)} are missing (reinstall fastapi-offline)")
    return folder


class ApiError(Exception):
    """An error answered as ``{"detail": ...}`` with a status and optional headers."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


async def get_service(request: Request) -> RecommendationService:
    """The app's service object (override with ``app.dependency_overrides[get_service]`` in tests)."""
    return request.app.state.service  # type: ignore[no-any-return]


async def get_model(service: Annotated[RecommendationService, Depends(get_service)]) -> LoadedModel:
    """The model served now; a request keeps this reference to the end (hot swaps do not affect it)."""
    return service.model()


Service = Annotated[RecommendationService, Depends(get_service)]
Model = Annotated[LoadedModel, Depends(get_model)]


def require(role: str) -> Callable[..., Awaitable[ApiKey | None]]:
    """Dependency: the request's key must allow ``role`` (when keys are configured); applies the rate limit."""

    async def authorize(
        request: Request,
        service: Annotated[RecommendationService, Depends(get_service)],
        _bearer_doc: Annotated[Any, Security(_bearer)],
        _key_doc: Annotated[Any, Security(_api_key)],
    ) -> ApiKey | None:
        settings = service.settings
        key: ApiKey | None = None
        if settings.auth_enabled:
            presented = extract_key(request.headers)
            if presented is None:
                service.metrics.rejected.labels(reason="no_key").inc()
                raise ApiError(
                    401, "missing API key (Authorization: Bearer KEY or X-API-Key: KEY)", {"WWW-Authenticate": "Bearer"}
                )
            key = find_key(settings.api_keys, presented)
            if key is None:
                service.metrics.rejected.labels(reason="invalid_key").inc()
                raise ApiError(401, "invalid API key", {"WWW-Authenticate": "Bearer"})
            if not key.allows(role):
                service.metrics.rejected.labels(reason="forbidden").inc()
                raise ApiError(403, f"this API key does not have the '{role}' role")
        limiter: RateLimiter | None = request.app.state.limiter
        if limiter is not None:
            client = request.client.host if request.client else "unknown"
            ident = f"key:{key.fingerprint}" if key is not None else f"ip:{client}"
            wait = limiter.acquire(ident)
            if wait > 0:
                service.metrics.rejected.labels(reason="rate_limited").inc()
                raise ApiError(429, "rate limit exceeded", {"Retry-After": retry_after_header(wait)})
        return key

    return authorize


_SHOWN_CHARS = 40


def _field_name(loc: list[int | str]) -> str:
    """``["body", "events", 1, "user_id"]`` -> ``events[1].user_id``; ``["path", "user_id"]`` -> ``user_id``;
    ``["body"]`` -> ``request body``."""
    name = ""
    for part in loc[1:]:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else part)
    return name or ("request body" if loc == ["body"] else "request")


def _shown(value: Any) -> str | None:
    """A short, escaped rendering of a scalar input (``'a\\nb'``, ``1001``); None for objects and lists."""
    if isinstance(value, str):
        if len(value) > _SHOWN_CHARS:
            return f"{value[:_SHOWN_CHARS]!r}... ({len(value)} characters)"
        return repr(value)
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    return None


def _clean_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """One entry per field: ``loc``, ``type`` and a one-line ``msg`` naming the field, the rule and the value
    received (``"user_id must not contain control characters ...; got 'a\\nb'"``; long strings are cut)."""
    out = []
    for err in exc.errors():
        loc = [p if isinstance(p, int | str) else str(p) for p in err.get("loc", ())]
        kind = str(err.get("type", "value_error"))
        rule = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        msg = f"{_field_name(loc)}{' ' if rule.startswith('must ') else ': '}{rule}"
        shown = _shown(err["input"]) if "input" in err and kind != "missing" else None
        if shown is not None:
            msg += f"; got {shown}"
        out.append({"loc": loc, "msg": msg, "type": kind})
    return out


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _clean_errors(exc)}, status_code=422)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StoreUnavailableError)
    async def store_unavailable(request: Request, exc: StoreUnavailableError) -> JSONResponse:
        log.error("event store unavailable: %s", exc)
        return JSONResponse({"detail": "event store unavailable"}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(ModelNotReadyError)
    async def not_ready(request: Request, exc: ModelNotReadyError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)


def _install_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` with their JavaScript, CSS and icon served by the app itself.

    Like ``/openapi.json`` they need no API key (they show the schema only; every call made from them carries
    its own key). Nothing is loaded from another host, so the pages work offline.
    """
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=docs_assets_dir()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            oauth2_redirect_url=None,  # API keys only, no OAuth2 flow
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get("/redoc", include_in_schema=False, response_class=HTMLResponse)
    async def redoc(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )


def create_app(settings: ServeSettings, *, service: RecommendationService | None = None) -> FastAPI:
    """Build the service app for ``settings`` (the model and the store are opened in the lifespan)."""
    service = service or RecommendationService(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if service.holder.current is None:
            if settings.load_in_background:
                threading.Thread(target=service.reload_quietly, name="attnrec-model-load", daemon=True).start()
            else:
                service.reload_quietly()
        try:
            _ = service.store
        except StoreUnavailableError as exc:
            log.error("event store unavailable at start-up (will retry): %s", exc)
        loop = asyncio.get_running_loop()
        sighup = False
        if settings.handle_sighup and hasattr(signal, "SIGHUP"):
            try:
                loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(None, service.reload_quietly))
                sighup = True
            except (RuntimeError, ValueError):  # not the main thread
                log.warning("SIGHUP reload unavailable (the app does not run in the main thread)")
        try:
            yield
        finally:
            if sighup:
                loop.remove_signal_handler(signal.SIGHUP)
            service.close()

    app = FastAPI(
        title="attnrec recommendation service",
        version=__version__,
        description="Events in, fresh recommendations (with reasons) out. See docs/serving.md.",
        lifespan=lifespan,
        docs_url=None,  # served below from the package's files, not from a CDN
        redoc_url=None,
    )
    app.router.route_class = IdRoute
    app.state.service = service
    app.state.limiter = RateLimiter(settings.rate_limit, settings.rate_burst) if settings.rate_limit else None
    # last added = outermost: metrics see every answer, including 413s
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, metrics=service.metrics)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    _install_handlers(app)

    read, write, admin = Depends(require("read")), Depends(require("write")), Depends(require("admin"))
    _install_docs(app)
    install_web(app, service)  # the web page for people: / and /web/... (docs/serving.md, "Web page")

    @app.get("/health", response_model=StatusResponse, tags=["operations"])
    def health() -> StatusResponse:
        """The process is alive."""
        return StatusResponse(status="ok")

    @app.get(
        "/ready",
        response_model=StatusResponse,
        tags=["operations"],
        responses={503: {"model": StatusResponse, "description": "Not ready."}},
    )
    def ready(service: Service) -> Any:
        """The model is loaded and the event store answers (else 503)."""
        ok, version, reason = service.ready()
        if ok:
            return StatusResponse(status="ready", model_version=version)
        # not logged here: polling while the model loads is normal; service.ready() logs each state change once
        return JSONResponse(
            StatusResponse(status="not ready", model_version=version, detail=reason).model_dump(),
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.post(
        "/events",
        response_model=EventsResponse,
        tags=["events"],
        dependencies=[write],
        responses={k: v for k, v in _ERRORS.items() if k != 404},
    )
    def post_events(body: EventsRequest, service: Service) -> EventsResponse:
        """Store events; answers after they are committed. The user's next recommendation reflects them."""
        limit = settings.max_events_per_request
        if len(body.events) > limit:
            raise RequestValidationError(
                [{"loc": ("body", "events"), "msg": f"at most {limit} events per request", "type": "too_long"}]
            )
        return service.add_events(body.events)

    @app.get(
        "/users/{user_id:path}/history",
        response_model=HistoryResponse,
        tags=["users"],
        dependencies=[read],
        responses=_ERRORS,
    )
    def user_history(user_id: UserId, service: Service, model: Model) -> HistoryResponse:
        """The training history followed by the stored events, oldest first."""
        return HistoryResponse(user_id=user_id, items=service.history_ids(model, user_id))

    @app.get(
        "/users/{user_id:path}/recommendations",
        response_model=RecommendationResponse,
        tags=["recommendations"],
        dependencies=[read],
        responses=_ERRORS,
    )
    def user_recommendations(
        user_id: UserId,
        service: Service,
        model: Model,
        k: Annotated[int, Query(ge=1, le=MAX_K, description="Number of items.")] = 10,
        explain: Annotated[bool, Query(description="Add the history items behind each item.")] = False,
    ) -> RecommendationResponse:
        """Top-k items from the user's live history (training history + stored events)."""
        return service.recommend_users(model, [user_id], min(k, settings.max_k), explain)[0]

    @app.post(
        "/recommendations",
        response_model=BatchResponse,
        tags=["recommendations"],
        dependencies=[read],
        responses=_ERRORS,
    )
    def batch_recommendations(body: BatchRequest, service: Service, model: Model) -> BatchResponse:
        """A batch of users (each with its live history) or an explicit history for an anonymous session."""
        k = min(body.k, settings.max_k)
        if body.users is not None:
            if len(body.users) > settings.max_batch_users:
                raise RequestValidationError(
                    [
                        {
                            "loc": ("body", "users"),
                            "type": "too_long",
                            "msg": f"at most {settings.max_batch_users} users per request",
                        }
                    ]
                )
            results = service.recommend_users(model, body.users, k, body.explain, body.user_features)
        else:
            assert body.history is not None
            if len(body.history) > settings.max_history_items:
                raise RequestValidationError(
                    [
                        {
                            "loc": ("body", "history"),
                            "type": "too_long",
                            "msg": f"at most {settings.max_history_items} items",
                        }
                    ]
                )
            results = [service.recommend_history(model, body.history, k, body.explain, body.user_features)]
        return BatchResponse(model_version=model.version, results=results)

    @app.post(
        "/admin/reload",
        response_model=ReloadResponse,
        tags=["operations"],
        dependencies=[admin],
        responses={**_ERRORS, 409: {"description": "The run folder was refused; the old model serves on."}},
    )
    def admin_reload(service: Service, body: Annotated[ReloadRequest | None, Body()] = None) -> ReloadResponse:
        """Load a run folder (default: the one served now) and swap it in; in-flight requests finish on the old
        model. A folder that fails to load is refused (409) and the old model keeps serving."""
        try:
            loaded, previous = service.reload(body.run_dir if body else None)
        except ModelLoadError as exc:
            current = service.holder.current
            raise ApiError(
                409, f"run folder refused: {exc}; still serving {current.version if current else 'no model'}"
            ) from None
        return ReloadResponse(
            model_version=loaded.version,
            previous_version=previous.version if previous else None,
            run_dir=str(loaded.run_dir),
        )

    metrics_deps = [] if settings.public_metrics else [read]

    @app.get(
        "/metrics",
        tags=["operations"],
        dependencies=metrics_deps,
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
    )
    def metrics(service: Service) -> Response:
        """Prometheus text format: requests, latencies, events stored/duplicate/unknown, fallbacks, reloads."""
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app
