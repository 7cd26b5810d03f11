"""Explicit registry of model names (``--model``) to classes, imported lazily so the CLI starts fast."""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING

from attnrec.errors import ConfigError

if TYPE_CHECKING:
    from attnrec.base import Recommender

MODELS: dict[str, str] = {
    "popularity": "attnrec.models.popularity:Popularity",
    "itemknn": "attnrec.models.itemknn:ItemKNN",
    "userknn": "attnrec.models.userknn:UserKNN",
    "ease": "attnrec.models.ease:EASE",
    "als": "attnrec.models.als:ALS",
    "bpr": "attnrec.models.bpr:BPR",
    "mf": "attnrec.models.mf:BiasedMF",
    "sasrec": "attnrec.models.sasrec:SASRec",
    "bert4rec": "attnrec.models.bert4rec:BERT4Rec",
    "narm": "attnrec.models.narm:NARM",
    "fusion": "attnrec.models.fusion:Fusion",
    "nais": "attnrec.models.nais:NAIS",
    "content": "attnrec.models.content:ContentRecommender",
    "lr": "attnrec.models.logreg:LogisticRegression",
    "fm": "attnrec.models.fm:FactorizationMachine",
    "din": "attnrec.models.din:DIN",
    "autoint": "attnrec.models.autoint:AutoInt",
}


def available_models() -> list[str]:
    """Names of the models whose module is installed."""
    out = []
    for name, target in MODELS.items():
        module = target.split(":")[0]
        if importlib.util.find_spec(module) is not None:
            out.append(name)
    return out


def get_model_class(name: str) -> type[Recommender]:
    """The class registered under ``name``; unknown names list the valid ones."""
    target = MODELS.get(name)
    if target is None or importlib.util.find_spec(target.split(":")[0]) is None:
        raise ConfigError(f"unknown model {name!r}; available models: {', '.join(available_models())}")
    module_name, cls_name = target.split(":")
    return getattr(importlib.import_module(module_name), cls_name)  # type: ignore[no-any-return]


def create_model(name: str, params: dict[str, object] | None = None) -> Recommender:
    """Instantiate model ``name`` with hyperparameter overrides ``params`` (validated by its config)."""
    return get_model_class(name)(params or {})
