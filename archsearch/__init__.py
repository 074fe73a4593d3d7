"""archsearch: compact CNN architecture + hyperparameter search under a hard parameter budget."""
__version__ = "0.1.0"
