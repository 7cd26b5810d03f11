"""Prometheus metrics of one app instance (a private :class:`CollectorRegistry`, never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    """Request counts and latencies per route, events stored/duplicate/unknown, fallbacks, reloads."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "attnrec_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "attnrec_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.events_stored = Counter("attnrec_events_stored", "Events durably stored", registry=r)
        self.events_duplicate = Counter(
            "attnrec_events_duplicate", "Events not stored again because their event_id was known", registry=r
        )
        self.events_unknown_item = Counter(
            "attnrec_events_unknown_item", "Stored events whose item the served model does not know", registry=r
        )
        self.events_unknown_user = Counter(
            "attnrec_events_unknown_user", "Stored events whose user the served model does not know", registry=r
        )
        self.recommendations = Counter(
            "attnrec_recommendations", "Recommendation lists served", ["fallback"], registry=r
        )
        self.fallbacks = Counter(
            "attnrec_fallbacks", "Recommendation lists answered by the popularity fallback", registry=r
        )
        self.cache = Counter(
            "attnrec_recommendation_cache", "Per-user recommendation lists from the cache", ["result"], registry=r
        )
        self.reloads = Counter("attnrec_model_reloads", "Model reload attempts", ["result"], registry=r)
        self.model_loaded = Gauge("attnrec_model_loaded", "1 for the served model version", ["version"], registry=r)
        self.rejected = Counter(
            "attnrec_requests_rejected", "Requests refused before the handler", ["reason"], registry=r
        )

    def set_model(self, version: str, previous: str | None) -> None:
        if previous is not None and previous != version:
            self.model_loaded.remove(previous)
        self.model_loaded.labels(version=version).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
