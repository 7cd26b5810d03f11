"""Settings of the recommendation service: one frozen pydantic object, built explicitly (nothing is read at import).

:meth:`ServeSettings.from_env` is the only place that looks at environment variables, and only when called.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from attnrec.errors import ConfigError
from attnrec.serving.auth import ApiKey, parse_api_keys

DEFAULT_DB_NAME = "events.sqlite3"
ENV_API_KEYS = "ATTNREC_API_KEYS"
ENV_API_KEYS_FILE = "ATTNREC_API_KEYS_FILE"


class ServeSettings(BaseModel):
    """Everything the service needs; :func:`attnrec.serving.app.create_app` takes one of these."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    run_dir: Path = Field(description="Run folder holding model.json, model.safetensors and vocab.json.")
    compare_run_dir: Path | None = Field(
        None,
        description="A second run folder shown beside the served one on the web page's compare view "
        "(read-only: the JSON API always answers with the served model).",
    )
    db: str | None = Field(
        None,
        description="Event store: 'sqlite:///PATH', a plain file path, or 'postgresql://...'. "
        f"Default: '<run_dir>/{DEFAULT_DB_NAME}'.",
    )
    api_keys: tuple[ApiKey, ...] = Field((), description="Accepted API keys; empty = no authentication.")
    rate_limit: float | None = Field(
        None, gt=0, description="Per-key sustained requests per second (token bucket); None = unlimited."
    )
    rate_burst: int = Field(20, ge=1, description="Token bucket capacity (requests allowed in a burst).")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="Largest request body; bigger bodies get 413.")
    max_events_per_request: int = Field(1000, ge=1, description="Largest 'events' list of POST /events.")
    max_batch_users: int = Field(100, ge=1, description="Largest 'users' list of POST /recommendations.")
    max_history_items: int = Field(1000, ge=1, description="Largest explicit 'history' of POST /recommendations.")
    max_k: int = Field(1000, ge=1, description="Largest 'k' a client may ask for.")
    max_stored_history: int = Field(
        10_000, ge=1, description="At most this many of a user's most recent stored events feed a recommendation."
    )
    cache_size: int = Field(
        50_000, ge=0, description="Finished per-user lists kept (keyed by the user's event state); 0 = off."
    )
    explain_top: int = Field(5, ge=1, description="History items listed per recommended item with explain=true.")
    explain_method: str | None = Field(
        "auto",
        description="How explain=true explanations are made (a method of attnrec.explain: occlusion, "
        "occlusion-search, rollout, rollout-grad, attention, target-attention, attributes, ...); 'auto' = the "
        "model's own method when it has one (DIN's occlusion-search, NAIS's contribution, the content model's "
        "attributes), else 'occlusion' "
        "(one batched scoring of the history without each of its items); None = the model's default "
        "(occlusion-search for the transformers: several times slower).",
    )
    load_in_background: bool = Field(
        True, description="Load the model after start-up in a thread (/ready answers 503 until it is loaded)."
    )
    handle_sighup: bool = Field(False, description="Reload the run folder on SIGHUP (set by 'attnrec serve').")
    public_metrics: bool = Field(False, description="Serve /metrics without a key even when keys are configured.")
    torch_threads: int | None = Field(None, ge=1, description="torch intra-op threads (None = leave as is).")
    device: str = Field(
        "auto", description="Where the model scores: 'auto' (the GPU when there is one), 'cpu', 'cuda' or 'cuda:N'."
    )

    @field_validator("explain_method")
    @classmethod
    def _known_method(cls, value: str | None) -> str | None:
        from attnrec.explain.methods import METHODS

        if value is not None and value != "auto" and value not in METHODS:
            raise ValueError(f"must be 'auto', one of {', '.join(METHODS)} or null")
        return value

    @field_validator("run_dir")
    @classmethod
    def _abs(cls, value: Path) -> Path:
        return Path(value).expanduser().resolve()

    @field_validator("compare_run_dir")
    @classmethod
    def _abs_or_none(cls, value: Path | None) -> Path | None:
        return None if value is None else Path(value).expanduser().resolve()

    @property
    def db_url(self) -> str:
        """The event store location with the default filled in."""
        return self.db or f"sqlite:///{self.run_dir / DEFAULT_DB_NAME}"

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        api_keys_file: Path | None = None,
        **values: object,
    ) -> ServeSettings:
        """Settings from explicit ``values`` plus API keys from ``ATTNREC_API_KEYS`` (comma-separated
        ``role:key`` entries) and/or ``api_keys_file`` / ``ATTNREC_API_KEYS_FILE`` (one entry a line)."""
        env = os.environ if environ is None else environ
        keys: list[ApiKey] = []
        if env.get(ENV_API_KEYS):
            keys += parse_api_keys(env[ENV_API_KEYS].replace(",", "\n"), source=ENV_API_KEYS)
        path = api_keys_file or (Path(env[ENV_API_KEYS_FILE]) if env.get(ENV_API_KEYS_FILE) else None)
        if path is not None:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"the API keys file {path} cannot be read ({exc.strerror})") from None
            keys += parse_api_keys(text, source=str(path))
        return cls(api_keys=tuple(keys), **values)  # type: ignore[arg-type]


def is_loopback(host: str) -> bool:
    """True for 'localhost' and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings: ServeSettings) -> None:
    """Refuse to listen on a non-loopback address without API keys."""
    if not is_loopback(host) and not settings.auth_enabled:
        raise ConfigError(
            f"refusing to bind --host {host!r} (not a loopback address) without API keys; set {ENV_API_KEYS} "
            "or --api-keys-file, or bind 127.0.0.1"
        )
