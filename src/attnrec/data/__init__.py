"""Data: loading and validating logs, vocabularies, indexed interactions, filters and splits."""

from attnrec.data.interactions import Interactions
from attnrec.data.split import (
    Split,
    filter_interactions,
    leave_one_out,
    ratio_split,
    split_interactions,
    temporal_split,
)
from attnrec.data.vocab import PAD, IdVocabulary

__all__ = [
    "PAD",
    "IdVocabulary",
    "Interactions",
    "Split",
    "filter_interactions",
    "leave_one_out",
    "ratio_split",
    "split_interactions",
    "temporal_split",
]
