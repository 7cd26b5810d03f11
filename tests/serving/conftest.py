"""Fixtures of the serving tests: tiny planted data, saved run folders, event stores (SQLite and PostgreSQL).

Planted structure: items come in pairs (i0, i1), (i2, i3), ... and every training user holds exactly one pair.
ItemKNN therefore recommends i3 first to anyone whose history is [i2]. The pair (i0, i1) has the most users, so
the popularity fallback ranks i0 and i1 first.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from fastapi.testclient import TestClient

from attnrec.data import Interactions
from attnrec.models.itemknn import ItemKNN
from attnrec.models.popularity import Popularity
from attnrec.serving.app import create_app
from attnrec.serving.service import RecommendationService
from attnrec.serving.settings import ServeSettings
from attnrec.serving.store import EventStore, PostgresStore, SQLiteStore

PG_ENV = "ATTNREC_TEST_POSTGRES_DSN"
NUM_PAIRS = 5


def planted_interactions() -> Interactions:
    users, items = [], []
    for pair in range(NUM_PAIRS):
        n_users = 6 if pair == 0 else 3
        for u in range(n_users):
            for item in (2 * pair, 2 * pair + 1):
                users.append(f"u{pair}_{u}")
                items.append(f"i{item}")
    return Interactions.from_frame(pl.DataFrame({"user_id": users, "item_id": items}))


@pytest.fixture(scope="session")
def interactions() -> Interactions:
    return planted_interactions()


@pytest.fixture(scope="session")
def knn_run(tmp_path_factory: pytest.TempPathFactory, interactions: Interactions) -> Path:
    folder = tmp_path_factory.mktemp("runs") / "knn-run"
    ItemKNN({"neighbors": 5}).fit(interactions).save(folder)
    return folder


@pytest.fixture(scope="session")
def pop_run(tmp_path_factory: pytest.TempPathFactory, interactions: Interactions) -> Path:
    folder = tmp_path_factory.mktemp("runs") / "pop-run"
    Popularity().fit(interactions).save(folder)
    return folder


@pytest.fixture
def run_copy(tmp_path: Path, knn_run: Path) -> Path:
    """A private copy of the ItemKNN run folder (tests that modify or replace run folders)."""
    dest = tmp_path / "run-a"
    shutil.copytree(knn_run, dest)
    return dest


StoreFactory = Callable[[], EventStore]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens (another connection to) one fresh event store; parametrised over SQLite and PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "events.sqlite3"
        yield lambda: SQLiteStore(path)
        return
    dsn = os.environ.get(PG_ENV)
    if not dsn:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set under CI: .ci/setup-postgres.sh failed (see .venv/postgres-setup.log)")
        pytest.skip(f"{PG_ENV} is not set: run .ci/setup-postgres.sh and export its DSN to test PostgreSQL")
    table = f"attnrec_test_{uuid.uuid4().hex[:12]}"
    yield lambda: PostgresStore(dsn, table=table, pool_size=4)
    cleanup = PostgresStore(dsn, table=table, pool_size=1)
    cleanup.drop()
    cleanup.close()


ClientFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(store_factory: StoreFactory, knn_run: Path) -> Iterator[ClientFactory]:
    """``make_client(run_dir=..., **settings)`` -> a started TestClient (closed at teardown)."""
    clients: list[TestClient] = []

    def make(run_dir: Path | None = None, *, service: RecommendationService | None = None, **values: Any) -> TestClient:
        values.setdefault("load_in_background", False)
        settings = ServeSettings(run_dir=run_dir or knn_run, **values)
        service = service or RecommendationService(settings, store_factory=store_factory)
        client = TestClient(create_app(settings, service=service), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient:
    return make_client()
