"""API keys and per-key rate limits.

Keys come as ``role:key`` entries (``ATTNREC_API_KEYS="read:k1,write:k2,admin:k3"`` or one entry a line in a
file, ``#`` starts a comment). Roles: ``read`` (recommendations, histories, metrics), ``write`` (``POST /events``)
and ``admin`` (``/admin/*``, implies read and write); combine with ``+`` (``read+write:KEY``). Clients send the key
as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``. Keys are compared in constant time with
:func:`hmac.compare_digest` against every configured key, and never logged or echoed: logs and metrics name a key
by its fingerprint (the first 8 hex digits of its SHA-256).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from attnrec.errors import ConfigError

ROLES = ("read", "write", "admin")
MIN_KEY_LENGTH = 16


@dataclass(frozen=True)
class ApiKey:
    """One accepted key with its roles (``admin`` implies ``read`` and ``write``)."""

    secret: str = field(repr=False)
    roles: frozenset[str]

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.secret.encode("utf-8")).hexdigest()[:8]

    def allows(self, role: str) -> bool:
        return role in self.roles or "admin" in self.roles

    def __repr__(self) -> str:
        return f"ApiKey(fingerprint={self.fingerprint!r}, roles={sorted(self.roles)!r})"


def parse_api_keys(text: str, *, source: str) -> list[ApiKey]:
    """Parse ``role:key`` entries, one per line (blank lines and ``#`` comments skipped).

    Errors name the source and the entry number, never the key.
    """
    keys: list[ApiKey] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        role_part, sep, secret = line.partition(":")
        roles = frozenset(r.strip() for r in role_part.split("+"))
        if not sep or not roles <= set(ROLES):
            raise ConfigError(
                f"{source}: entry {number} must be 'ROLE:KEY' with ROLE one of {', '.join(ROLES)} "
                "(combine with '+'); got an entry without a valid role"
            )
        if len(secret) < MIN_KEY_LENGTH or not secret.isprintable() or any(c.isspace() for c in secret):
            raise ConfigError(
                f"{source}: entry {number}: the key must be at least {MIN_KEY_LENGTH} printable characters "
                "without spaces"
            )
        keys.append(ApiKey(secret, roles))
    return keys


def extract_key(headers: Mapping[str, str]) -> str | None:
    """The key a request presents (``Authorization: Bearer`` first, then ``X-API-Key``), or None."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    header = headers.get("x-api-key")
    return header.strip() if header and header.strip() else None


def find_key(keys: tuple[ApiKey, ...], presented: str) -> ApiKey | None:
    """The configured key equal to ``presented``, compared in constant time against every key."""
    given = presented.encode("utf-8", "surrogateescape")
    found: ApiKey | None = None
    for key in keys:
        if hmac.compare_digest(key.secret.encode("utf-8"), given) and found is None:
            found = key
    return found


class RateLimiter:
    """Token buckets: ``rate`` requests per second sustained, ``burst`` at once, per client identity."""

    def __init__(self, rate: float, burst: int, *, clock: object = time.monotonic, max_clients: int = 100_000):
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._max_clients = max_clients

    def acquire(self, ident: str) -> float:
        """Take one token for ``ident``; returns 0.0 when allowed, else the seconds until a token is free."""
        now = self._clock()  # type: ignore[operator]
        with self._lock:
            tokens, last = self._buckets.get(ident, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                if len(self._buckets) >= self._max_clients and ident not in self._buckets:
                    self._buckets.clear()  # bounded memory (only reachable with anonymous per-IP limits)
                self._buckets[ident] = (tokens - 1.0, now)
                return 0.0
            self._buckets[ident] = (tokens, now)
            return (1.0 - tokens) / self.rate


def retry_after_header(wait: float) -> str:
    """Whole seconds to wait (at least 1), as the ``Retry-After`` header wants."""
    return str(max(1, math.ceil(wait)))
