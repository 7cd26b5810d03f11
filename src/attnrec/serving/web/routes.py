"""The pages: ``/`` (find a user, search titles), ``/web/user``, ``/web/session``, ``/web/search``, ``/web/model``,
``/web/compare``, ``/web/attention.svg``, ``/web/reasons``, ``/web/signin`` and the form post ``/web/events``.

The user, session and compare pages show their recommendation lists without explanations (explaining costs many
rescorings of the history, occlusion one per history item); web.js then fetches the reasons from ``/web/reasons``
(the same ``explain=true`` answer as the JSON API, cached the same way) and puts them under the matching items.
A list carries the history version it was computed from, and ``/web/reasons`` refuses (409) a version that is no
longer the user's, so reasons never attach to a list they were not computed for. Without JavaScript a "Show the
reasons" link loads the page with ``reasons=1``, which explains inline.

Ids travel in query strings (``/web/user?id=a%2Fb``), never in paths, so any id the JSON API accepts works and is
checked by the same rule (1-256 printable characters). Pages are rendered with Jinja2 autoescaping: every title,
id and attribute is HTML-escaped. Pages need a read key and ``/web/events`` a write key (when keys are configured);
the key comes from the sign-in cookie (or from a header, as for the JSON API).
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from attnrec.serving.auth import ApiKey, extract_key, find_key, retry_after_header
from attnrec.serving.holder import LoadedModel, ModelHolder, ModelLoadError
from attnrec.serving.schemas import MAX_ID_LENGTH, EventIn
from attnrec.serving.service import ModelNotReadyError, RecommendationService
from attnrec.serving.store import StoreUnavailableError
from attnrec.serving.web.security import (
    CSRF_FIELD,
    KEY_COOKIE,
    CsrfError,
    add_security_headers,
    check_csrf,
    clear_key_cookie,
    csrf_token,
    set_csrf_cookie,
    set_key_cookie,
)
from attnrec.serving.web.views import (
    ItemCard,
    ModelPages,
    PagesCache,
    attention_grid,
    event_time,
    grid_cells,
)

WEB_PREFIX = "/web"
STATIC_URL = f"{WEB_PREFIX}/static"
HERE = Path(__file__).parent
DEFAULT_K = 10
MAX_PAGE_K = 50
HISTORY_SHOWN = 50
MAX_FORM_FIELDS = 20
SAMPLE_USERS = 8
STABLE_TRIES = 3
T = TypeVar("T")


# ---------------------------------------------------------------------------------------------- errors and state
class WebError(Exception):
    """An error shown as a page: ``status``, a one-line ``message`` and optional headers."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


class SignInRequiredError(Exception):
    """No (valid) key: the browser is sent to the sign-in page, which then returns to ``next_url``."""

    def __init__(self, next_url: str, message: str | None = None) -> None:
        super().__init__(message or "sign in")
        self.next_url = next_url
        self.message = message


@dataclass(frozen=True)
class Viewer:
    """Who looks at a page: whether keys are configured and, if so, the key presented."""

    auth: bool
    key: ApiKey | None

    @property
    def can_write(self) -> bool:
        return not self.auth or (self.key is not None and self.key.allows("write"))

    @property
    def signed_in(self) -> bool:
        return self.key is not None


class StaticAssets(StaticFiles):
    """The package's CSS and JavaScript, with the security headers (``nosniff`` matters for scripts)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        return add_security_headers(response, cache=True)


class WebState:
    """What the pages keep per app: the template environment, per-model page data and the compare model."""

    def __init__(self, service: RecommendationService) -> None:
        self.service = service
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=True,  # every template, .html and .svg alike
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.pages = PagesCache()
        folder = service.settings.compare_run_dir
        self.compare_holder = ModelHolder(folder, service.settings.device) if folder is not None else None
        self._compare_lock = threading.Lock()

    def compare_model(self) -> LoadedModel | None:
        """The ``--compare`` model, loaded on first use (None when the service was started without one)."""
        holder = self.compare_holder
        if holder is None:
            return None
        if holder.current is None:
            with self._compare_lock:
                if holder.current is None:
                    try:
                        holder.reload()
                    except ModelLoadError as exc:
                        raise WebError(503, f"the compare run folder cannot be served: {exc}") from None
        return holder.current


def _state(request: Request) -> WebState:
    return request.app.state.web  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------- helpers
def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _url(request: Request, path: str, params: Sequence[tuple[str, Any]] | Mapping[str, Any] = ()) -> str:
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    query = urlencode([(k, v) for k, v in pairs if v is not None and v != ""])
    return f"{_root(request)}{path}" + (f"?{query}" if query else "")


def _safe_next(value: str | None) -> str:
    """A local path to return to after sign-in (anything else, such as ``//evil.example``, becomes ``/``)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or not value.isprintable():
        return "/"
    return value[:2000]


def _check_id(value: str | None, name: str) -> str:
    """The id rule of the JSON API (1-256 printable characters), as a page error naming the field."""
    if value is None or value == "":
        raise WebError(400, f"{name} is missing")
    if len(value) > MAX_ID_LENGTH or not value.isprintable():
        shown = repr(value[:40]) + ("..." if len(value) > 40 else "")
        raise WebError(400, f"{name} must be 1-{MAX_ID_LENGTH} printable characters; got {shown}")
    return value


def _k(request: Request) -> int:
    raw = request.query_params.get("k")
    if raw is None or raw == "":
        return DEFAULT_K
    try:
        k = int(raw)
    except ValueError:
        raise WebError(400, f"k must be a whole number within 1..{MAX_PAGE_K}; got {raw[:20]!r}") from None
    if not 1 <= k <= MAX_PAGE_K:
        raise WebError(400, f"k must be within 1..{MAX_PAGE_K}; got {k}")
    return k


def _history_param(request: Request) -> list[str]:
    """The anonymous session's items (``?h=ID&h=ID``), each checked by the id rule, at most ``max_history_items``."""
    ids = [_check_id(v, "h") for v in request.query_params.getlist("h")]
    limit = _state(request).service.settings.max_history_items
    if len(ids) > limit:
        raise WebError(400, f"an anonymous session holds at most {limit} items; got {len(ids)}")
    return ids


@contextlib.contextmanager
def _service_errors() -> Iterator[None]:
    """Model not loaded yet / store down -> a 503 page with ``Retry-After`` (the JSON API answers the same)."""
    try:
        yield
    except ModelNotReadyError as exc:
        raise WebError(503, f"{exc}; try again in a moment", {"Retry-After": "1"}) from None
    except StoreUnavailableError:
        raise WebError(503, "the event store is unavailable; try again in a moment", {"Retry-After": "1"}) from None


def _model(request: Request) -> LoadedModel:
    with _service_errors():
        return _state(request).service.model()


def authorize(request: Request, role: str) -> Viewer:
    """The viewer of this request, who must hold ``role`` when keys are configured; applies the rate limit.

    The key comes from the sign-in cookie, else from ``Authorization: Bearer`` / ``X-API-Key``. No key or an
    unknown key sends the browser to the sign-in page; a key without ``role`` gets a 403 page.
    """
    service = _state(request).service
    settings = service.settings
    viewer = Viewer(auth=settings.auth_enabled, key=None)
    here = _safe_next(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    if settings.auth_enabled:
        presented = request.cookies.get(KEY_COOKIE) or extract_key(request.headers)
        if not presented:
            service.metrics.rejected.labels(reason="no_key").inc()
            raise SignInRequiredError(here if request.method == "GET" else "/")
        key = find_key(settings.api_keys, presented)
        if key is None:
            service.metrics.rejected.labels(reason="invalid_key").inc()
            raise SignInRequiredError(here if request.method == "GET" else "/", "that key is not accepted (any more)")
        viewer = Viewer(auth=True, key=key)
        if not key.allows(role):
            service.metrics.rejected.labels(reason="forbidden").inc()
            request.state.viewer = viewer
            raise WebError(403, f"this API key does not have the '{role}' role; sign in with a {role} key")
    limiter = request.app.state.limiter
    if limiter is not None:
        client = request.client.host if request.client else "unknown"
        ident = f"key:{viewer.key.fingerprint}" if viewer.key is not None else f"ip:{client}"
        wait = limiter.acquire(ident)
        if wait > 0:
            service.metrics.rejected.labels(reason="rate_limited").inc()
            raise WebError(429, "too many requests; slow down", {"Retry-After": retry_after_header(wait)})
    request.state.viewer = viewer
    return viewer


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the size limit of the app applies before this)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise WebError(415, f"forms are posted as application/x-www-form-urlencoded; got {kind[:60]!r}")
    try:
        text = (await request.body()).decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS, errors="strict")
    except UnicodeDecodeError:
        raise WebError(400, "the form is not valid UTF-8") from None
    except ValueError:
        raise WebError(400, f"a form has at most {MAX_FORM_FIELDS} fields") from None
    return dict(pairs)


def render(request: Request, template: str, context: Mapping[str, Any], status: int = 200) -> HTMLResponse:
    """A page from ``template`` with the common context (URLs, CSRF token, viewer) and the security headers."""
    state = _state(request)
    token, new = csrf_token(request)
    viewer = getattr(request.state, "viewer", None) or Viewer(state.service.settings.auth_enabled, None)
    common = {
        "url": lambda path, *pairs, **params: _url(request, path, [*pairs, *params.items()]),
        "static": lambda name: f"{_root(request)}{STATIC_URL}/{name}",
        "csrf_field": CSRF_FIELD,
        "csrf_token": token,
        "viewer": viewer,
        "new_event_id": lambda: f"web-{uuid.uuid4().hex}",
        "inline_reasons": _inline_reasons(request),
        "path": request.url.path,
    }
    html = state.env.get_template(template).render({**common, **context})
    response = HTMLResponse(html, status_code=status)
    if new:
        set_csrf_cookie(response, request, token)
    return add_security_headers(response)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------- page data
@dataclass(frozen=True)
class Reason:
    """One reason of a recommendation: a history item (its card's label) or an attribute / feature field."""

    label: str
    weight: float
    kind: str = "history_item"


@dataclass(frozen=True)
class RecRow:
    rank: int
    card: ItemCard
    score: float
    because: list[Reason]


@dataclass(frozen=True)
class TimelineRow:
    position: int
    card: ItemCard
    source: str  # "training" or the event time


def _rec_rows(pages: ModelPages, items: Sequence[Any]) -> list[RecRow]:
    return [
        RecRow(
            n + 1,
            pages.card(it.item_id),
            it.score,
            [
                Reason(pages.card(b.item_id).label, b.weight)
                if b.item_id is not None
                else Reason(b.name or "", b.weight, b.kind)
                for b in it.because
            ],
        )
        for n, it in enumerate(items)
    ]


def _timeline(
    service: RecommendationService, loaded: LoadedModel, pages: ModelPages, user_id: str, last: int | None
) -> tuple[list[TimelineRow], int]:
    """The ``last`` (None: all) items of the user's live history as rows, oldest first, and the history's length.

    Cards are built for the shown rows only (an ML-1M history holds up to 2,314 items; the page shows 50)."""
    history = service.live_history(loaded, user_id)
    items = loaded.model.items_
    assert items is not None
    n_train, n_stored = history.train_len, len(history.stored)
    total = n_train + n_stored
    first = 0 if last is None else max(0, total - last)
    train = [str(i) for i in items.ids(history.item_idx[min(first, n_train) : n_train])]
    rows = [TimelineRow(first + n + 1, pages.card(i), "training") for n, i in enumerate(train)]
    rows += [
        TimelineRow(n_train + n + 1, pages.card(e.item_id), event_time(e.timestamp))
        for n, e in enumerate(history.stored)
        if n_train + n >= first
    ]
    return rows, total


def _at_one_version(
    service: RecommendationService, loaded: LoadedModel, user_id: str, compute: Callable[[], T]
) -> tuple[T, str]:
    """``compute()`` (which reads the user's live history) and the history version it saw, as ``a-b-c``.

    The version is read before and after: the store only appends, so equal versions mean no event arrived in
    between and everything ``compute`` read belongs to that version; otherwise it runs again (3 tries)."""
    version = service.live_history(loaded, user_id).version
    for _ in range(STABLE_TRIES):
        out = compute()
        now = service.live_history(loaded, user_id).version
        if now == version:
            return out, _version_text(version)
        version = now
    raise WebError(
        503,
        f"the history of user {user_id[:40]!r} changed during each of {STABLE_TRIES} tries; try again",
        {"Retry-After": "1"},
    )


def _version_text(version: tuple[int, int, int]) -> str:
    return "-".join(map(str, version))


@dataclass(frozen=True)
class ReasonsLinks:
    """Where a list's reasons come from: ``url`` (the ``/web/reasons`` fragment web.js fetches), ``link`` (the page
    with the reasons inline, for browsers without JavaScript) and the history ``version`` the list was made for."""

    url: str
    link: str
    version: str


def _reasons_links(
    request: Request,
    loaded: LoadedModel,
    rec: Any,
    fragment: Sequence[tuple[str, Any]],
    page: str,
    page_params: Sequence[tuple[str, Any]],
    version: str = "",
) -> ReasonsLinks | None:
    """The deferred reasons of ``rec`` (None when they are inline, ``reasons=1``, or there is nothing to explain:
    a model without explanations, a popularity fallback, an empty list)."""
    if _inline_reasons(request) or not loaded.model.supports_explain or rec.fallback is not None or not rec.items:
        return None
    return ReasonsLinks(
        url=_url(request, f"{WEB_PREFIX}/reasons", [*fragment, ("v", version), ("mv", loaded.version)]),
        link=_url(request, page, [*page_params, ("reasons", "1")]),
        version=version,
    )


def _inline_reasons(request: Request) -> bool:
    return request.query_params.get("reasons") == "1"


def _model_summary(pages: ModelPages) -> dict[str, Any]:
    loaded = pages.loaded
    headline = [(n, t) for n, _, t in pages.metric_rows() if n in ("hr@10", "ndcg@10", "recall@10")]
    return {
        "name": pages.name,
        "version": loaded.version,
        "run": loaded.run_dir.name,
        "headline": headline,
        "dataset": pages.dataset_line(),
        "explains": bool(loaded.model.supports_explain),
    }


# ---------------------------------------------------------------------------------------------- routes
def install_web(app: FastAPI, service: RecommendationService) -> None:
    """Add the web pages (``/`` and ``/web/...``) and their static files to ``app``."""
    app.state.web = WebState(service)
    app.mount(STATIC_URL, StaticAssets(directory=HERE / "static"), name="web-static")

    @app.exception_handler(WebError)
    async def web_error(request: Request, exc: WebError) -> HTMLResponse:
        response = render(request, "error.html", {"status": exc.status, "message": exc.message}, exc.status)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(SignInRequiredError)
    async def sign_in_required(request: Request, exc: SignInRequiredError) -> Response:
        params = {"next": exc.next_url, "why": "invalid" if exc.message else None}
        response = RedirectResponse(_url(request, f"{WEB_PREFIX}/signin", params), status_code=303)
        if exc.message:
            clear_key_cookie(response, request)
        return add_security_headers(response)

    @app.exception_handler(CsrfError)
    async def csrf_error(request: Request, exc: CsrfError) -> HTMLResponse:
        return render(request, "error.html", {"status": 403, "message": str(exc)}, 403)

    def get(path: str) -> Any:
        return app.get(path, include_in_schema=False, response_class=HTMLResponse)

    def post(path: str) -> Any:
        return app.post(path, include_in_schema=False, response_class=HTMLResponse)

    @get("/")
    def home(request: Request) -> HTMLResponse:
        authorize(request, "read")
        loaded = _model(request)
        pages = _state(request).pages.get(loaded)
        users = loaded.model.users_
        sample = [users.id(i) for i in range(1, min(SAMPLE_USERS, len(users)) + 1)] if users is not None else []
        return render(request, "home.html", {"model": _model_summary(pages), "sample_users": sample})

    @get(f"{WEB_PREFIX}/signin")
    def signin_page(request: Request) -> HTMLResponse:
        why = request.query_params.get("why")
        message = "That key is not accepted (any more); sign in again." if why == "invalid" else None
        return render(
            request,
            "signin.html",
            {"next": _safe_next(request.query_params.get("next")), "message": message, "auth": _auth_on(request)},
        )

    @post(f"{WEB_PREFIX}/signin")
    async def signin(request: Request) -> Response:
        form = await _form(request)
        check_csrf(request, form)
        next_url = _safe_next(form.get("next"))
        settings = _state(request).service.settings
        if not settings.auth_enabled:
            return add_security_headers(RedirectResponse(_root(request) + next_url, status_code=303))
        key = find_key(settings.api_keys, form.get("key", "").strip())
        if key is None:
            _state(request).service.metrics.rejected.labels(reason="invalid_key").inc()
            context = {"next": next_url, "message": "That key is not accepted.", "auth": True}
            return render(request, "signin.html", context, 401)
        response = RedirectResponse(_root(request) + next_url, status_code=303)
        set_key_cookie(response, request, key.secret)
        return add_security_headers(response)

    @post(f"{WEB_PREFIX}/signout")
    async def signout(request: Request) -> Response:
        check_csrf(request, await _form(request))
        response = RedirectResponse(_url(request, f"{WEB_PREFIX}/signin"), status_code=303)
        clear_key_cookie(response, request)
        return add_security_headers(response)

    @get(f"{WEB_PREFIX}/user")
    def user_page(request: Request) -> HTMLResponse:
        viewer = authorize(request, "read")
        user_id = _check_id(request.query_params.get("id"), "user id")
        k = _k(request)
        show_all = request.query_params.get("all") == "1"
        inline = _inline_reasons(request)
        state = _state(request)
        service = state.service
        loaded = _model(request)
        pages = state.pages.get(loaded)
        with _service_errors():
            ((rows, total), rec), version = _at_one_version(
                service,
                loaded,
                user_id,
                lambda: (
                    _timeline(service, loaded, pages, user_id, None if show_all else HISTORY_SHOWN),
                    service.recommend_users(loaded, [user_id], k, inline)[0],
                ),
            )
        users = loaded.model.users_
        added = request.query_params.get("added")
        page_params = [("id", user_id), ("k", k if k != DEFAULT_K else None), ("all", "1" if show_all else None)]
        context = {
            "user_id": user_id,
            "known": users is not None and user_id in users,
            "timeline": rows,
            "history_total": total,
            "history_hidden": 0 if show_all else max(0, total - HISTORY_SHOWN),
            "recs": _rec_rows(pages, rec.items),
            "reasons": _reasons_links(
                request, loaded, rec, [("user", user_id), ("k", k)], f"{WEB_PREFIX}/user", page_params, version
            ),
            "fallback": rec.fallback,
            "k": k,
            "model": _model_summary(pages),
            "attention_url": _url(
                request,
                f"{WEB_PREFIX}/attention.svg",
                [("user", user_id), ("k", k if k != DEFAULT_K else None), ("v", version)],
            )
            if total and rec.fallback is None and loaded.model.supports_explain
            else None,
            "added": pages.card(added) if added else None,
            "can_write": viewer.can_write,
            "compare_available": state.compare_holder is not None,
        }
        return render(request, "user.html", context)

    @post(f"{WEB_PREFIX}/events")
    async def add_event(request: Request) -> Response:
        form = await _form(request)
        check_csrf(request, form)
        authorize(request, "write")
        try:
            event = EventIn(
                user_id=form.get("user_id", ""),
                item_id=form.get("item_id", ""),
                event_id=form.get("event_id") or None,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first.get("loc", ())) or "form"
            raise WebError(400, f"{field}: {first.get('msg', 'invalid value')}") from None
        service = _state(request).service
        with _service_errors():
            await run_in_threadpool(service.add_events, [event])  # the durable path of POST /events
        back = "compare" if form.get("back") == "compare" else "user"
        params = [("id" if back == "user" else "user", event.user_id), ("added", event.item_id)]
        if form.get("k"):
            params.append(("k", form["k"]))
        if form.get("reasons") == "1":  # a page with the reasons inline (no JavaScript) stays so
            params.append(("reasons", "1"))
        return add_security_headers(RedirectResponse(_url(request, f"{WEB_PREFIX}/{back}", params), status_code=303))

    @get(f"{WEB_PREFIX}/session")
    def session_page(request: Request) -> HTMLResponse:
        authorize(request, "read")
        history = _history_param(request)
        k = _k(request)
        state = _state(request)
        loaded = _model(request)
        pages = state.pages.get(loaded)
        inline = _inline_reasons(request)
        with _service_errors():
            rec = state.service.recommend_history(loaded, history, k, inline)
        keep = [("reasons", "1")] if inline else []  # a page with the reasons inline stays so
        steps = [
            {
                "card": pages.card(item),
                "remove": _url(
                    request, f"{WEB_PREFIX}/session", [*(("h", h) for h in history[:n] + history[n + 1 :]), *keep]
                ),
            }
            for n, item in enumerate(history)
        ]
        recs = _rec_rows(pages, rec.items)
        add_urls = {
            r.card.item_id: _url(
                request, f"{WEB_PREFIX}/session", [*(("h", h) for h in history), ("h", r.card.item_id), *keep]
            )
            for r in recs
        }
        known = [h for h in history if loaded.model.items_ is not None and h in loaded.model.items_]
        context = {
            "steps": steps,
            "history": history,
            "recs": recs,
            "reasons": _reasons_links(
                request,
                loaded,
                rec,
                [*(("h", h) for h in history), ("k", k)],
                f"{WEB_PREFIX}/session",
                [*(("h", h) for h in history), ("k", k if k != DEFAULT_K else None)],
            )
            if history
            else None,
            "add_urls": add_urls,
            "fallback": rec.fallback,
            "k": k,
            "model": _model_summary(pages),
            "attention_url": _url(request, f"{WEB_PREFIX}/attention.svg", [("h", h) for h in history])
            if known and rec.fallback is None and loaded.model.supports_explain
            else None,
        }
        return render(request, "session.html", context)

    @get(f"{WEB_PREFIX}/search")
    def search_page(request: Request) -> HTMLResponse:
        viewer = authorize(request, "read")
        query = request.query_params.get("q", "")[:200]
        user = request.query_params.get("user")
        user_id = _check_id(user, "user") if user else None
        history = _history_param(request)
        loaded = _model(request)
        pages = _state(request).pages.get(loaded)
        results = pages.search(query)
        session_urls = {
            c.item_id: _url(request, f"{WEB_PREFIX}/session", [*(("h", h) for h in history), ("h", c.item_id)])
            for c in results
        }
        context = {
            "query": query,
            "user_id": user_id,
            "history": history,
            "results": results,
            "session_urls": session_urls,
            "session_back": _url(request, f"{WEB_PREFIX}/session", [("h", h) for h in history]),
            "can_write": viewer.can_write,
            "has_titles": bool(loaded.titles),
        }
        return render(request, "search.html", context)

    @get(f"{WEB_PREFIX}/model")
    def model_page(request: Request) -> HTMLResponse:
        authorize(request, "read")
        state = _state(request)
        shown = [state.pages.get(_model(request))]
        other = state.compare_model() if request.query_params.get("compare") == "1" else None
        if other is not None:
            shown.append(state.pages.get(other))
        models = [
            {
                "summary": _model_summary(p),
                "metrics": p.metric_rows(),
                "config": p.config_rows(),
                "fit": (p.metrics or {}).get("fit"),
                "train_seconds": (p.metrics or {}).get("train_seconds"),
                "loaded_at": event_time(p.loaded.loaded_at),
                "titles": len(p.loaded.titles or {}),
                "n_items": p.loaded.model.num_items,
                "n_users": p.loaded.model.num_users,
            }
            for p in shown
        ]
        return render(request, "model.html", {"models": models, "compare_available": state.compare_holder is not None})

    @get(f"{WEB_PREFIX}/compare")
    def compare_page(request: Request) -> HTMLResponse:
        viewer = authorize(request, "read")
        state = _state(request)
        user = request.query_params.get("user")
        user_id = _check_id(user, "user") if user else None
        k = _k(request)
        loaded = _model(request)
        other = state.compare_model()
        columns = []
        if other is not None and user_id is not None:
            inline = _inline_reasons(request)
            service = state.service
            models = (loaded, other)
            with _service_errors():
                recs, version = _at_one_version(
                    service,
                    loaded,
                    user_id,
                    lambda: [service.recommend_users(m, [user_id], k, inline)[0] for m in models],
                )
            ids = [{it.item_id for it in rec.items} for rec in recs]
            both = ids[0] & ids[1]
            page_params = [("user", user_id), ("k", k if k != DEFAULT_K else None)]
            for which, m, rec in zip(("served", "compare"), models, recs, strict=True):
                p = state.pages.get(m)
                fragment = [("user", user_id), ("k", k), ("model", which)]
                columns.append(
                    {
                        "model": _model_summary(p),
                        "recs": _rec_rows(p, rec.items),
                        "fallback": rec.fallback,
                        "reasons": _reasons_links(
                            request, m, rec, fragment, f"{WEB_PREFIX}/compare", page_params, version
                        ),
                    }
                )
            overlap = len(both)
        else:
            both, overlap = set(), 0
        added = request.query_params.get("added")
        context = {
            "user_id": user_id,
            "k": k,
            "available": other is not None,
            "columns": columns,
            "both": both,
            "overlap": overlap,
            "can_write": viewer.can_write,
            "added": state.pages.get(loaded).card(added) if added else None,
        }
        return render(request, "compare.html", context)

    @get(f"{WEB_PREFIX}/reasons")
    def reasons_fragment(request: Request) -> HTMLResponse:
        """The reasons of one list as HTML, one element per item keyed by its id (fetched by web.js).

        ``user=ID`` (with ``v``, the history version the list was made for) or ``h=ID&h=ID`` (a session), ``k``,
        ``model=served|compare`` and ``mv`` (the model version of the list). A ``v`` or ``mv`` that is no longer
        current gets 409: the list on the page is stale, and its reasons are not sent.
        """
        authorize(request, "read")
        k = _k(request)
        state = _state(request)
        service = state.service
        which = request.query_params.get("model") or "served"
        if which not in ("served", "compare"):
            raise WebError(400, f"model must be 'served' or 'compare'; got {which[:20]!r}")
        loaded = _model(request) if which == "served" else state.compare_model()
        if loaded is None:
            raise WebError(404, "this service holds no compare model (start it with --compare RUN2)")
        wanted_model = request.query_params.get("mv")
        user = request.query_params.get("user")
        wanted = request.query_params.get("v") or ""

        def stale(message: str) -> HTMLResponse:
            return render(request, "reasons.html", {"recs": [], "version": wanted, "stale": message}, 409)

        if wanted_model is not None and wanted_model != loaded.version:
            return stale(f"the model changed (now {loaded.version}); reload the page")
        with _service_errors():
            if user:
                user_id = _check_id(user, "user")
                if not wanted:
                    raise WebError(400, "v (the history version of the list) is missing")
                # the list's version must hold before and after the reasons are computed (the store only appends)
                changed = f"the history of user {user_id[:40]!r} changed; reload the page"
                if _version_text(service.live_history(loaded, user_id).version) != wanted:
                    return stale(changed)
                rec = service.recommend_users(loaded, [user_id], k, True)[0]
                if _version_text(service.live_history(loaded, user_id).version) != wanted:
                    return stale(changed)
            else:
                rec = service.recommend_history(loaded, _history_param(request), k, True)
        pages = state.pages.get(loaded)
        return render(request, "reasons.html", {"recs": _rec_rows(pages, rec.items), "version": wanted, "stale": None})

    @app.get(f"{WEB_PREFIX}/attention.svg", include_in_schema=False, response_class=Response)
    def attention_svg(request: Request) -> Response:
        authorize(request, "read")
        state = _state(request)
        loaded = _model(request)
        user = request.query_params.get("user")
        items = loaded.model.items_
        assert items is not None
        with _service_errors():
            if user:
                user_id = _check_id(user, "user")
                hist = state.service.live_history(loaded, user_id).item_idx
                who = f"user {user_id}"
                # the top item of the page's own list (``k`` as on the page: the list cache answers it)
                rec = state.service.recommend_users(loaded, [user_id], _k(request), False)[0]
                top = items.get(rec.items[0].item_id) if len(hist) and rec.items and rec.fallback is None else None
                uidx = loaded.model.users_.get(user_id) if loaded.model.users_ is not None else 0
            else:
                hist = items.indices(_history_param(request), unknown="drop")
                who = "this session"
                top = None
                if len(hist):
                    recs = loaded.model.recommend_indices(np.zeros(1, dtype=np.int64), [hist], k=1, exclude_seen=True)
                    top = int(recs.item_idx[0, 0]) if recs.item_idx.shape[1] and not recs.fallback[0] else None
                uidx = 0
            grid = attention_grid(loaded, hist, top, user_idx=uidx)
        pages = state.pages.get(loaded)
        top_label = pages.card(str(items.id(top))).label if top else None
        body = state.env.get_template("attention.svg").render(
            grid=grid,
            cells=grid_cells(grid),
            labels=grid.columns if grid.by_fields else [pages.card(c).label for c in grid.columns],
            who=who,
            model_name=pages.name,
            top_label=top_label,
        )
        response = Response(body, media_type="image/svg+xml")
        return add_security_headers(response)

    def _auth_on(request: Request) -> bool:
        return bool(_state(request).service.settings.auth_enabled)
