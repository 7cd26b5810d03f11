"""Members of a :class:`attnrec.models.fusion.Fusion`: loaded from run folders (the check that a run was trained
on exactly the fusion's training events), saved next to the fusion and loaded back (each checked against the
weights digest the fusion recorded), and JSON-safe copies of their training information."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from attnrec.base import MODEL_WEIGHTS, Recommender
from attnrec.data.interactions import Interactions
from attnrec.errors import ConfigError, PersistenceError
from attnrec.io import write_json
from attnrec.training.options import TrainingOptions

MEMBERS_DIR = "members"


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars/arrays and tuples turned into JSON types (unknown objects as strings)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def events_digest(inter: Interactions) -> str:
    """sha256 of a set of events: the ids and the (user, item) index sequence."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(inter.users.ids(np.arange(1, len(inter.users) + 1)).tolist()).encode())
    digest.update(b"\x1e")
    digest.update("\x1f".join(inter.items.ids(np.arange(1, len(inter.items) + 1)).tolist()).encode())
    digest.update(np.ascontiguousarray(inter.user_idx, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(inter.item_idx, dtype=np.int64).tobytes())
    return digest.hexdigest()


def load_member_run(run: str, train: Interactions, *, where: str) -> Recommender:
    """The model of run folder ``run``, after checking that it was trained on exactly ``train``."""
    from attnrec.runs import file_sha256, load_data, load_run, locate

    model, config = load_run(run)
    if config is None:
        raise ConfigError(
            f"{where}: {run} has no config.json; a member run must be a folder written by `attnrec train`"
        )
    path = locate(config.data.path, config.data.path_from_run, run, what="data", flag="--data")
    sha = file_sha256(path)
    if config.data.sha256 and sha != config.data.sha256:
        raise ConfigError(
            f"{where}: the data of run {run} changed since it was trained ({path}: sha256 {sha[:12]}..., the run "
            f"recorded {config.data.sha256[:12]}...)"
        )
    member_train = load_data(config, run=run).split.train
    if events_digest(member_train) != events_digest(train):
        raise ConfigError(
            f"{where}: run {run} was trained on other data than this fusion (its training events, data sha256 "
            f"{sha[:12]}..., {config.split} split, differ); train members on the same data and split"
        )
    return model


def fit_members(
    specs: Sequence[Any], train: Interactions, valid: Interactions | None, options: TrainingOptions
) -> tuple[list[Recommender], list[dict[str, Any]]]:
    """The fusion's members, each loaded from its run folder (``spec.run``, checked against ``train``) or created
    and fitted on ``train`` / ``valid`` (checkpoints under ``member-<i>``); with their histories set to ``train``,
    and a JSON-safe summary of each (model, source, fit seconds, training information)."""
    from attnrec.registry import create_model

    members: list[Recommender] = []
    info: list[dict[str, Any]] = []
    for i, spec in enumerate(specs):
        if spec.run is not None:
            member = load_member_run(spec.run, train, where=f"members[{i}]")
        else:
            member = create_model(str(spec.model), spec.params)
            checkpoints = None if options.checkpoint_dir is None else options.checkpoint_dir / f"member-{i}"
            sub = TrainingOptions(
                seed=options.seed,
                threads=options.threads,
                device=options.device,
                progress=options.progress,
                checkpoint_dir=checkpoints,
                resume=options.resume,
                log=None,
                processes=options.processes,
            )
            member.fit(train, valid, options=sub)
        member.set_histories(train)
        members.append(member)
        info.append(
            {
                "model": member.name,
                "source": spec.run or "trained",
                "fit_seconds": round(member.fit_seconds_, 3),
                "train_info": jsonable(member.train_info_),
            }
        )
    return members, info


def member_folder(i: int, member: Recommender) -> str:
    """Folder of member ``i``, relative to the fusion's folder."""
    return f"{MEMBERS_DIR}/{i}-{member.name}"


def save_members(folder: Path, members: Sequence[Recommender]) -> list[str]:
    """Save each member under ``folder/members/<i>-<name>/`` (replacing earlier ones); the sha256 of each
    member's weights file, in order."""
    from attnrec.runs import file_sha256

    shutil.rmtree(folder / MEMBERS_DIR, ignore_errors=True)
    return [file_sha256(m.save(folder / member_folder(i, m)) / MODEL_WEIGHTS) for i, m in enumerate(members)]


def load_members(
    folder: Path, relative: Sequence[str], digests: Sequence[str], owner: Recommender
) -> list[Recommender]:
    """The members saved under ``folder`` at ``relative`` paths, each checked against its recorded weights
    digest and against ``owner``'s vocabularies."""
    from attnrec.runs import file_sha256

    members = []
    for i, rel in enumerate(relative):
        sub = folder / rel
        if not (sub / MODEL_WEIGHTS).is_file():
            raise PersistenceError(f"{folder}: member {i} is missing ({sub / MODEL_WEIGHTS} not found)")
        if file_sha256(sub / MODEL_WEIGHTS) != digests[i]:
            raise PersistenceError(f"{sub / MODEL_WEIGHTS}: not the member saved with this fusion (sha256 differs)")
        member = Recommender.load(sub)
        if member.items_ != owner.items_ or member.users_ != owner.users_:
            raise PersistenceError(f"{sub}: the member's vocabularies differ from the fusion's")
        members.append(member)
    return members


def write_fusion_json(
    path: Path,
    summary: dict[str, Any],
    weights: np.ndarray | None,
    members: Sequence[Recommender],
    digests: Sequence[str],
    train_info: dict[str, Any],
) -> None:
    """A fusion's ``fusion.json``: ``summary`` (normalisation, ...), the weights, each member's folder, model name
    and weights digest, and the weight tuning of ``train_info``."""
    write_json(
        path,
        {
            **summary,
            "weights": [float(w) for w in weights] if weights is not None else None,
            "members": [
                {"folder": member_folder(i, m), "model": m.name, "sha256": d}
                for i, (m, d) in enumerate(zip(members, digests, strict=True))
            ],
            "tuning": jsonable(train_info.get("tuning", {})),
        },
    )


def member_pairs(
    member: Recommender, history: np.ndarray, items: np.ndarray, top: int, method: str | None
) -> list[list[tuple[int, float]]]:
    """A fusion member's history attributions for ``items``: its own explanations (``method`` where it has it,
    else its default), occlusion for members that use histories but do not explain, nothing for the others."""
    from attnrec.explain.methods import METHODS, methods_for

    if member.supports_explain:
        chosen = method if method in methods_for(member) else None
        return member.explain_indices(history, items, top=top, method=chosen)
    if member.uses_history and len(history):
        return [e.history_pairs() for e in METHODS["occlusion"].explain(member, history, items, top)]
    return [[] for _ in items.tolist()]


__all__ = [
    "MEMBERS_DIR",
    "events_digest",
    "fit_members",
    "jsonable",
    "load_member_run",
    "load_members",
    "member_folder",
    "member_pairs",
    "save_members",
    "write_fusion_json",
]
