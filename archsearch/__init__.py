"""archsearch: compact CNN architecture + hyperparameter search under a hard parameter budget."""
__version__ = "0.1.0"


def default_data_dir() -> str:
    """--data-dir's default: $ARCHSEARCH_DATA, else data/ in the working directory."""
    import os
    return os.environ.get("ARCHSEARCH_DATA", "data")
