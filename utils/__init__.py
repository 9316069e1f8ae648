"""Utilities for the attention-interpretability course: model loading, checkers, corpus and metrics.

`from utils import check, load_model` is all a notebook needs; `vocabulary()` lists the words the
course models know and `unknown_words(model, text)` the words of a prompt they read as <|unk|>.
Imports are lazy, so that tools such as `python -m utils.authoring.build` start without loading torch.
"""

from importlib import import_module

_EXPORTS = {"check": "utils.checking", "load_model": "utils.models", "ModelUnavailableError": "utils.models",
            "vocabulary": "utils.tokenizer", "unknown_words": "utils.tokenizer"}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'utils' has no attribute {name!r}")
