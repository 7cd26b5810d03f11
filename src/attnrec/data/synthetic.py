"""Synthetic interaction logs with planted structure, for demos and tests.

:func:`make_synthetic` builds a small "streaming service": a catalogue of titled items with genres, some of them
episodes of series, and users who

* **have genre tastes**: each user has one or two favourite genres and about ``taste_strength`` (85 %) of the
  titles they start come from them. Collaborative-filtering models (ItemKNN, UserKNN, EASE, ALS, BPR) should find
  this: the items they recommend to a user should mostly carry the user's favourite genres
  (``SyntheticData.user_genres`` holds the truth).
* **watch series in order**: a series ``"Star Saga 1", "Star Saga 2", ...`` is always started at its first
  unwatched episode and, with probability ``continue_prob`` (80 %), the next event is the next episode. A
  sequential model (SASRec) should rank episode ``i + 1`` first after a history ending in episode ``i``; an
  order-blind model cannot tell ``i + 1`` from ``i - 1``.
* **follow popularity**: within a genre, titles are drawn with Zipf-like weights (``popularity_exponent``), so a
  popularity baseline is reasonable but beatable.
* **rate what they like higher**: ratings 1-5 are ``3 + 1.2 * [favourite genre] + item quality + user bias +
  noise``, rounded and clipped, so a rating model (BiasedMF) should beat the global mean.

Timestamps increase strictly per user. Everything follows from ``seed``.

:func:`planted_sequences` (item ``i`` is always followed by ``i + 1``) and :func:`block_interactions` (users of
group ``g`` only interact with items of group ``g``) are tiny generators for unit tests; they return
:class:`~attnrec.data.Interactions` whose item index equals the item id (``"1"`` has index 1).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from attnrec.data.interactions import Interactions
from attnrec.data.vocab import IdVocabulary
from attnrec.errors import ConfigError

if TYPE_CHECKING:
    from attnrec.data.features import ItemFeatures

GENRES = (
    "Action", "Comedy", "Drama", "Sci-Fi", "Horror", "Romance", "Documentary", "Animation", "Thriller", "Fantasy",
)  # fmt: skip
_ADJECTIVES = (
    "Star", "Silent", "Crimson", "Hidden", "Iron", "Golden", "Broken", "Midnight", "Frozen", "Wild", "Lost",
    "Electric", "Secret", "Burning", "Distant", "Hollow", "Last", "Northern", "Paper", "Velvet",
)  # fmt: skip
_NOUNS = (
    "Saga", "River", "Empire", "Garden", "Harbor", "Kingdom", "Signal", "Orchard", "Voyage", "Frontier", "Station",
    "Chronicles", "Echo", "Legacy", "Circuit", "Mirror", "Tides", "Valley", "Archive", "Code",
)  # fmt: skip


@dataclass(frozen=True)
class SyntheticData:
    """A synthetic log and catalogue.

    Attributes:
        interactions: ``user_id, item_id, timestamp, rating`` (strings, strings, int64 epoch seconds, float64),
            sorted by user then time.
        items: ``item_id, title, genres`` (genres joined with ``"|"``) in catalogue order.
        titles: ``item_id -> title``.
        user_genres: ``user_id -> favourite genres`` (the planted truth).
        series: ``series title -> item ids in episode order``.
    """

    interactions: pl.DataFrame
    items: pl.DataFrame
    titles: dict[str, str] = field(default_factory=dict)
    user_genres: dict[str, list[str]] = field(default_factory=dict)
    series: dict[str, list[str]] = field(default_factory=dict)

    def to_interactions(self) -> Interactions:
        """The log as indexed :class:`~attnrec.data.Interactions`."""
        return Interactions.from_frame(self.interactions)

    def item_features(self) -> ItemFeatures:
        """Titles and ``genre=<name>`` attribute tokens, as :func:`~attnrec.data.features.load_item_features`
        gives for MovieLens."""
        from attnrec.data.features import ItemFeatures

        attributes = {
            i: [f"genre={g}" for g in gs.split("|")]
            for i, gs in zip(self.items["item_id"].to_list(), self.items["genres"].to_list(), strict=True)
        }
        return ItemFeatures(titles=dict(self.titles), attributes=attributes, fields=["genre"])

    def next_episode(self) -> dict[str, str]:
        """``item_id -> item_id of the next episode`` for every episode that has one."""
        out = {}
        for episodes in self.series.values():
            for a, b in itertools.pairwise(episodes):
                out[a] = b
        return out


def _check_positive(name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"the {name!r} parameter of make_synthetic must be > 0; got {value}")


def make_synthetic(
    num_users: int = 600,
    num_items: int = 300,
    *,
    seed: int = 0,
    events_per_user: float = 50.0,
    num_genres: int = 8,
    num_series: int = 25,
    max_episodes: int = 8,
    taste_strength: float = 0.85,
    continue_prob: float = 0.8,
    popularity_exponent: float = 0.9,
) -> SyntheticData:
    """Generate the synthetic catalogue and log described in the module docstring.

    Args:
        num_users: number of users.
        num_items: catalogue size (episodes included).
        seed: random seed (the output is a pure function of the arguments).
        events_per_user: mean number of events per user (log-normal; at least 5, at most 3x the mean; fewer when
            a user has watched everything it can start).
        num_genres: number of genres (``<= 10``).
        num_series: number of series; each has 3..``max_episodes`` episodes (fewer when the catalogue is small).
        max_episodes: longest series.
        taste_strength: probability that a newly started title comes from a favourite genre.
        continue_prob: probability of watching the next episode right after an episode.
        popularity_exponent: Zipf exponent of the within-genre popularity.
    """
    for name, value in (("num_users", num_users), ("num_items", num_items), ("events_per_user", events_per_user)):
        _check_positive(name, value)
    if not 2 <= num_genres <= len(GENRES):
        raise ConfigError(f"the 'num_genres' parameter of make_synthetic must be in 2..{len(GENRES)}; got {num_genres}")
    for name, value in (("taste_strength", taste_strength), ("continue_prob", continue_prob)):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"the {name!r} parameter of make_synthetic must be in [0, 1]; got {value}")
    if max_episodes < 2:
        raise ConfigError(f"the 'max_episodes' parameter of make_synthetic must be >= 2; got {max_episodes}")
    rng = np.random.default_rng(seed)
    genres = list(GENRES[:num_genres])

    # ---- catalogue: series first, then standalone titles
    names = [f"{a} {n}" for a in _ADJECTIVES for n in _NOUNS]
    rng.shuffle(names)
    item_ids: list[str] = []
    titles: list[str] = []
    item_genres: list[list[int]] = []
    series_of: list[int] = []  # series number or -1
    episode_of: list[int] = []
    series: dict[str, list[str]] = {}
    name_pos = 0
    for s in range(num_series):
        length = int(rng.integers(3, max_episodes + 1))
        if len(item_ids) + length > num_items // 2:
            break
        title = names[name_pos]
        name_pos += 1
        g = int(rng.integers(num_genres))
        series[title] = []
        for e in range(1, length + 1):
            ident = str(len(item_ids) + 1)
            item_ids.append(ident)
            titles.append(f"{title} {e}")
            item_genres.append([g])
            series_of.append(s)
            episode_of.append(e)
            series[title].append(ident)
    while len(item_ids) < num_items:
        ident = str(len(item_ids) + 1)
        base = names[name_pos % len(names)]
        suffix = "" if name_pos < len(names) else f" {name_pos // len(names) + 1}"
        name_pos += 1
        year = int(rng.integers(1970, 2024))
        item_ids.append(ident)
        titles.append(f"The {base}{suffix} ({year})")
        first = int(rng.integers(num_genres))
        gs = [first]
        if rng.random() < 0.35:
            second = int(rng.integers(num_genres))
            if second != first:
                gs.append(second)
        item_genres.append(gs)
        series_of.append(-1)
        episode_of.append(0)
    n_items = len(item_ids)
    series_of_a = np.asarray(series_of)
    episode_a = np.asarray(episode_of)
    popularity = 1.0 / np.arange(1, n_items + 1) ** popularity_exponent
    popularity = popularity[rng.permutation(n_items)]
    quality = rng.normal(0.0, 0.5, n_items)
    by_genre = [
        np.asarray([i for i in range(n_items) if g in item_genres[i]], dtype=np.int64) for g in range(num_genres)
    ]
    # a series can only be entered at its first episode: later episodes are reached by continuing
    entry = np.asarray([series_of[i] < 0 or episode_of[i] == 1 for i in range(n_items)])

    # ---- users
    rows_u: list[str] = []
    rows_i: list[str] = []
    rows_t: list[int] = []
    rows_r: list[float] = []
    user_genres: dict[str, list[str]] = {}
    start_time = 1_577_836_800  # 2020-01-01
    for u in range(1, num_users + 1):
        uid = str(u)
        fav = list(rng.choice(num_genres, size=1 if rng.random() < 0.5 else 2, replace=False).tolist())
        user_genres[uid] = [genres[g] for g in fav]
        bias = rng.normal(0.0, 0.3)
        n_events = int(
            np.clip(rng.lognormal(np.log(events_per_user) - 0.1, 0.45), 5, min(n_items, 3 * events_per_user))
        )
        seen = np.zeros(n_items, dtype=bool)
        t = start_time + int(rng.integers(0, 365 * 86400))
        last = -1
        for _ in range(n_events):
            nxt = -1
            if last >= 0 and series_of_a[last] >= 0 and rng.random() < continue_prob:
                cand = np.flatnonzero((series_of_a == series_of_a[last]) & (episode_a == episode_a[last] + 1))
                if len(cand) and not seen[cand[0]]:
                    nxt = int(cand[0])
            if nxt < 0:
                if rng.random() < taste_strength:
                    pool = np.unique(np.concatenate([by_genre[g] for g in fav]))
                else:
                    pool = by_genre[int(rng.integers(num_genres))]
                pool = pool[~seen[pool] & entry[pool]]
                if len(pool) == 0:
                    pool = np.flatnonzero(~seen & entry)
                if len(pool) == 0:  # everything startable is watched (episodes are only reached in order)
                    break
                w = popularity[pool]
                nxt = int(
                    pool[np.searchsorted(np.cumsum(w), rng.random() * w.sum(), side="right").clip(0, len(pool) - 1)]
                )
            seen[nxt] = True
            t += int(rng.exponential(2 * 3600)) + 60
            likes = any(g in fav for g in item_genres[nxt])
            r = 3.0 + 1.2 * likes + quality[nxt] + bias + rng.normal(0.0, 0.5)
            rows_u.append(uid)
            rows_i.append(item_ids[nxt])
            rows_t.append(t)
            rows_r.append(float(np.clip(np.rint(r), 1, 5)))
            last = nxt
    interactions = pl.DataFrame(
        {"user_id": rows_u, "item_id": rows_i, "timestamp": rows_t, "rating": rows_r},
        schema={"user_id": pl.Utf8, "item_id": pl.Utf8, "timestamp": pl.Int64, "rating": pl.Float64},
    )
    items = pl.DataFrame(
        {
            "item_id": item_ids,
            "title": titles,
            "genres": ["|".join(genres[g] for g in gs) for gs in item_genres],
        }
    )
    return SyntheticData(interactions, items, dict(zip(item_ids, titles, strict=True)), user_genres, series)


def _vocab(n: int, kind: str, prefix: str = "") -> IdVocabulary:
    return IdVocabulary([f"{prefix}{i}" for i in range(1, n + 1)], kind=kind)


def planted_sequences(num_users: int = 60, num_items: int = 30, *, length: int = 8, seed: int = 0) -> Interactions:
    """Users walk through consecutive items: item ``i`` is always followed by item ``i + 1``.

    Each user starts at a random item and watches ``length`` consecutive items (no wrap-around). Item ids are
    ``"1".."num_items"`` with index equal to the id; user ids are ``"u1".."u<num_users>"``; timestamps increase.
    """
    if length < 2 or length > num_items:
        raise ConfigError(f"the 'length' parameter of planted_sequences must be in 2..num_items; got {length}")
    rng = np.random.default_rng(seed)
    starts = rng.integers(1, num_items - length + 2, size=num_users)
    users = np.repeat(np.arange(1, num_users + 1), length)
    items = (starts[:, None] + np.arange(length)[None, :]).ravel()
    ts = np.tile(np.arange(length, dtype=np.int64) * 60, num_users) + 1_600_000_000
    return Interactions(
        _vocab(num_users, "user", "u"), _vocab(num_items, "item"), users.astype(np.int64), items.astype(np.int64), ts,
        None, np.arange(len(users), dtype=np.int64),
    ).sorted()  # fmt: skip


def block_groups(n: int, num_groups: int) -> np.ndarray:
    """Group of each index ``1..n`` (position 0 = -1) when ``n`` indices are cut into ``num_groups`` blocks."""
    return np.concatenate([[-1], (np.arange(n) * num_groups) // n])


def block_interactions(
    num_users: int = 40,
    num_items: int = 40,
    *,
    num_groups: int = 4,
    density: float = 0.5,
    seed: int = 0,
) -> Interactions:
    """Checkerboard data: users of group ``g`` only interact with items of group ``g``.

    Users ``"u1".."u<num_users>"`` and items ``"1".."<num_items>"`` (index = id) are cut into ``num_groups``
    consecutive blocks (:func:`block_groups`); each user picks ``density`` of its group's items at random (at least
    one). Events carry increasing timestamps and ratings 4 or 5.
    """
    if not 0.0 < density < 1.0:
        raise ConfigError(f"the 'density' parameter of block_interactions must be in (0, 1); got {density}")
    rng = np.random.default_rng(seed)
    ug = block_groups(num_users, num_groups)
    ig = block_groups(num_items, num_groups)
    users: list[int] = []
    items: list[int] = []
    for u in range(1, num_users + 1):
        pool = np.flatnonzero(ig == ug[u])
        n = max(1, round(density * len(pool)))
        chosen = rng.choice(pool, size=n, replace=False)
        users.extend([u] * n)
        items.extend(chosen.tolist())
    m = len(users)
    return Interactions(
        _vocab(num_users, "user", "u"),
        _vocab(num_items, "item"),
        np.asarray(users, dtype=np.int64),
        np.asarray(items, dtype=np.int64),
        np.arange(m, dtype=np.int64) * 60 + 1_600_000_000,
        rng.choice([4.0, 5.0], size=m),
        np.arange(m, dtype=np.int64),
    ).sorted()


def planted_ratings(
    num_users: int = 80,
    num_items: int = 60,
    *,
    rank: int = 2,
    density: float = 0.5,
    noise: float = 0.1,
    seed: int = 0,
) -> tuple[Interactions, np.ndarray]:
    """Ratings from a planted low-rank model ``3 + b_u + b_i + p_u . q_i + noise`` on a random ``density`` of cells.

    Returns ``(interactions, truth)`` where ``truth`` is the noise-free ``(num_users + 1, num_items + 1)`` rating
    matrix (row/column 0 unused). Ids as in :func:`block_interactions`.
    """
    rng = np.random.default_rng(seed)
    p = rng.normal(0, 0.7, (num_users, rank))
    q = rng.normal(0, 0.7, (num_items, rank))
    bu = rng.normal(0, 0.3, num_users)
    bi = rng.normal(0, 0.3, num_items)
    truth = np.zeros((num_users + 1, num_items + 1))
    truth[1:, 1:] = 3.0 + bu[:, None] + bi[None, :] + p @ q.T
    mask = rng.random((num_users, num_items)) < density
    uu, ii = np.nonzero(mask)
    uu, ii = uu + 1, ii + 1
    ratings = truth[uu, ii] + rng.normal(0, noise, len(uu))
    inter = Interactions(
        _vocab(num_users, "user", "u"),
        _vocab(num_items, "item"),
        uu.astype(np.int64),
        ii.astype(np.int64),
        np.arange(len(uu), dtype=np.int64) + 1_600_000_000,
        ratings,
        np.arange(len(uu), dtype=np.int64),
    ).sorted()
    return inter, truth
