"""archsearch: compact CNN architecture + hyperparameter search under a hard parameter budget.

    import archsearch
    study = archsearch.search("mnist", budget=10000, trials=40, timeout="30m")
    folder = archsearch.export(study, max_params=8000, out="best/")
    archsearch.train(folder / "config.json", seeds=3)
"""
__version__ = "0.2.0"
__all__ = ["search", "export", "train", "open_study", "ArchsearchError"]


def default_data_dir() -> str:
    """--data-dir's default: $ARCHSEARCH_DATA, else data/ in the working directory."""
    import os
    return os.environ.get("ARCHSEARCH_DATA", "data")


def __getattr__(name: str):
    """The API, imported on first use: `archsearch --help` and `presets` need no torch."""
    if name in ("search", "export", "train", "open_study"):
        from . import api
        return getattr(api, name)
    if name == "ArchsearchError":
        from .errors import ArchsearchError
        return ArchsearchError
    raise AttributeError(f"module 'archsearch' has no attribute {name!r}")
