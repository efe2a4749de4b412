from .datasets import Augment, ExcerptDataset, validation_excerpts
from .tracks import SOURCES, DataError, Track, find_tracks

__all__ = ["Augment", "ExcerptDataset", "validation_excerpts", "DataError", "Track", "find_tracks", "SOURCES"]
