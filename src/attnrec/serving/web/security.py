"""Sign-in cookie, CSRF tokens and the security headers of the web pages.

* The API key a person signs in with is kept in an ``HttpOnly``, ``SameSite=Strict`` cookie (``Secure`` when the
  page was served over HTTPS), checked against the configured keys on every request like a header key.
* Every form post carries a CSRF token (double submit): a random token lives in its own ``HttpOnly``,
  ``SameSite=Strict`` cookie and is rendered into each form; a post is accepted only when the two are equal
  (compared in constant time) and, when the browser sends ``Origin`` or ``Sec-Fetch-Site``, when they name this
  site.
* Every page gets a Content-Security-Policy without inline scripts or styles (``'self'`` only), ``frame-ancestors
  'none'``, ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` and ``Cache-Control:
  no-store`` (pages show people's histories).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

KEY_COOKIE = "attnrec_key"
CSRF_COOKIE = "attnrec_csrf"
CSRF_FIELD = "csrf_token"
_TOKEN_BYTES = 32
_TOKEN_CHARS = 43  # len(secrets.token_urlsafe(32))

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class CsrfError(Exception):
    """A form post without a matching CSRF token, or from another site (answered 403)."""


def add_security_headers(response: Response, *, cache: bool = False) -> Response:
    """Set :data:`SECURITY_HEADERS` on ``response`` (``cache=True`` keeps the response's own caching)."""
    for name, value in SECURITY_HEADERS.items():
        if name == "Cache-Control" and cache:
            continue
        response.headers[name] = value
    return response


def _is_token(value: str | None) -> bool:
    return value is not None and len(value) == _TOKEN_CHARS and value.replace("-", "").replace("_", "").isalnum()


def csrf_token(request: Request) -> tuple[str, bool]:
    """``(token, new)``: the request's CSRF cookie, or a fresh token (``new``: the caller must set the cookie)."""
    current = request.cookies.get(CSRF_COOKIE)
    if _is_token(current):
        assert current is not None
        return current, False
    return secrets.token_urlsafe(_TOKEN_BYTES), True


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_csrf_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request), path="/", max_age=None
    )


def set_key_cookie(response: Response, request: Request, key: str) -> None:
    """Keep the signed-in API key for the browser session (no ``Max-Age``: gone when the browser closes)."""
    response.set_cookie(KEY_COOKIE, key, httponly=True, samesite="strict", secure=_secure(request), path="/")


def clear_key_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(KEY_COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request))


def check_csrf(request: Request, form: Mapping[str, str]) -> None:
    """Raise :class:`CsrfError` unless the form's token equals the CSRF cookie and the post comes from this site."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise CsrfError(f"form posted from another site (Sec-Fetch-Site: {site[:20]!r})")
    origin = request.headers.get("origin")
    # the host part only: a TLS-terminating proxy changes the scheme the app sees, not the Host header
    if origin is not None and origin != "null" and urlsplit(origin).netloc != request.url.netloc:
        raise CsrfError(f"form posted from another origin ({origin[:60]!r}; this site is {request.url.netloc!r})")
    cookie = request.cookies.get(CSRF_COOKIE)
    sent = form.get(CSRF_FIELD)
    if not _is_token(cookie) or sent is None:
        raise CsrfError("the form's CSRF token is missing; reload the page and try again")
    assert cookie is not None
    if not hmac.compare_digest(cookie.encode(), sent.encode("utf-8", "surrogateescape")):
        raise CsrfError("the form's CSRF token does not match; reload the page and try again")
