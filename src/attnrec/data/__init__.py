"""Data: loading and validating logs, vocabularies, indexed interactions, filters and splits."""

from attnrec.data.download import MOVIELENS, download_movielens
from attnrec.data.features import FEATURE_FORMATS, ItemFeatures, load_item_features
from attnrec.data.interactions import Interactions
from attnrec.data.loaders import FORMATS, detect_format, load_interactions, read_interactions
from attnrec.data.split import (
    FilterReport,
    PartCounts,
    Split,
    filter_interactions,
    leave_one_out,
    prepare_split,
    ratio_split,
    split_interactions,
    temporal_split,
)
from attnrec.data.vocab import PAD, IdVocabulary

__all__ = [
    "FEATURE_FORMATS",
    "FORMATS",
    "MOVIELENS",
    "PAD",
    "FilterReport",
    "IdVocabulary",
    "Interactions",
    "ItemFeatures",
    "PartCounts",
    "Split",
    "detect_format",
    "download_movielens",
    "filter_interactions",
    "leave_one_out",
    "load_interactions",
    "load_item_features",
    "prepare_split",
    "ratio_split",
    "read_interactions",
    "split_interactions",
    "temporal_split",
]
