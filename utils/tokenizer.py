"""The course's word-level tokenizer, and what it does not know.

The course models read one token per word of utils.corpus (590 words, plus BOS, PAD and UNK), so a
word outside that vocabulary silently becomes <|unk|>. For learners:

    vocabulary()                       # the 590 words the course models know, sorted
    unknown_words(model, "the cat sat on the mat")   # ['sat', 'mat']: words the model reads as <|unk|>

`load_model` makes a course model say so, in one printed line, whenever a prompt with unknown words
enters it as text (`model.to_tokens`, `to_str_tokens`, `run_with_cache("...")`, ...); the attention
explorer shows the same line under its prompt box. Models whose tokenizer has no unknown token (GPT-2's
byte-level BPE) are left alone.

For the zoo: `build_tokenizer`, `save_tokenizer`, `load_tokenizer`. The tokenizer is saved with every
course model in Hugging Face format (tokenizer.json + tokenizer_config.json with "tokenizer_class":
"PreTrainedTokenizerFast"), so `AutoTokenizer.from_pretrained(folder)` and TransformerBridge load it
offline.
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from utils.corpus import BOS, PAD, UNK, token_ids

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

MAX_LENGTH = 64
MAX_LISTED = 10  # unknown words named in the message; the rest are counted


def build_tokenizer(ids: dict[str, int] | None = None) -> PreTrainedTokenizerFast:
    """The word-level tokenizer over `ids` (default `corpus.token_ids()`; BOS 0, PAD 1, UNK 2), in memory."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    ids = ids or token_ids()
    tok = Tokenizer(models.WordLevel(vocab=ids, unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                                       special_tokens=[(BOS, ids[BOS])])
    tok.decoder = decoders.WordPiece(cleanup=False)
    tok.add_special_tokens([BOS, PAD, UNK])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=BOS, pad_token=PAD,
                                   unk_token=UNK, model_max_length=MAX_LENGTH)


def save_tokenizer(folder: Path, tokenizer: PreTrainedTokenizerFast | None = None) -> None:
    """Write the tokenizer into `folder` and mark it loadable as a plain PreTrainedTokenizerFast with BOS."""
    folder = Path(folder)
    (tokenizer or build_tokenizer()).save_pretrained(str(folder))
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.update(tokenizer_class="PreTrainedTokenizerFast", add_bos_token=True)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def load_tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer saved by `save_tokenizer` (offline)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


# ---------------------------------------------------------------- what a model knows
def vocabulary(model_or_tokenizer=None) -> list[str]:
    """The words a model knows, sorted, special tokens left out.

    With no argument, the course models' vocabulary (every course model with a tokenizer shares it);
    with a model or a tokenizer, that tokenizer's (for GPT-2: its 50,000 BPE pieces).
    """
    if model_or_tokenizer is None:
        from utils.corpus import vocabulary as course_vocabulary

        return course_vocabulary()
    tokenizer = _tokenizer(model_or_tokenizer)
    specials = set(tokenizer.all_special_tokens)
    return sorted(word for word in tokenizer.get_vocab() if word not in specials)


def unknown_words(model_or_tokenizer, text: str | list[str]) -> list[str]:
    """The words of `text` that the model reads as its unknown token (e.g. <|unk|>), in order, once each.

    A word is what the tokenizer splits off (the course's splits at spaces and punctuation, so "mat."
    gives "mat" and "."); it is reported as spelled in `text`. Empty for tokenizers that have no unknown
    token, such as GPT-2's, and for the unknown token itself written out.
    """
    tokenizer = _tokenizer(model_or_tokenizer)
    texts = [text] if isinstance(text, str) else text
    if not (isinstance(texts, (list, tuple)) and all(isinstance(t, str) for t in texts)):
        raise TypeError(f"unknown_words expects a string or a list of strings; got {type(text).__name__}")
    unk_id, unk = tokenizer.unk_token_id, tokenizer.unk_token
    if unk_id is None:
        return []
    found: dict[str, None] = {}  # ordered set
    for t in texts:
        if getattr(tokenizer, "is_fast", False):
            encoded = tokenizer(t, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
            pieces = [t[start:end] for token, (start, end) in zip(encoded["input_ids"], encoded["offset_mapping"])
                      if token == unk_id]
        else:  # a slow tokenizer has no offsets: test each word between spaces
            pieces = [w for w in t.split() if unk_id in tokenizer.encode(w, add_special_tokens=False)]
        found.update((piece, None) for piece in pieces if piece != unk)
    return list(found)


def unknown_words_message(model_or_tokenizer, text: str | list[str]) -> str:
    """One line naming the unknown words of `text` and how to list the known ones; "" if there are none."""
    return _message(_tokenizer(model_or_tokenizer), unknown_words(model_or_tokenizer, text))


def warn_unknown_words(model_or_tokenizer, text: str | list[str]) -> list[str]:
    """Print `unknown_words_message` when `text` has unknown words (a line once per notebook cell).

    Returns the unknown words. Printed, not a Python warning: one plain line in the cell's output.
    """
    unknown = unknown_words(model_or_tokenizer, text)
    if unknown:
        _announce(_message(_tokenizer(model_or_tokenizer), unknown))
    return unknown


def watch_prompts(model):
    """Make `model` print the unknown-words line whenever text enters it (its `to_tokens`, which every
    string input goes through). Does nothing for a model whose tokenizer has no unknown token. Returns
    `model`."""
    if not may_have_unknown_words(getattr(model, "tokenizer", None)):
        return model
    model.to_tokens = types.MethodType(_to_tokens_with_warning, model)
    return model


def may_have_unknown_words(tokenizer) -> bool:
    """Whether `tokenizer` can turn text into its unknown token (word-level yes, GPT-2's byte-level BPE no)."""
    if tokenizer is None or getattr(tokenizer, "unk_token_id", None) is None:
        return False
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return True  # a slow tokenizer: assume it can
    return getattr(backend.model, "unk_token", None) is not None or getattr(backend.model, "unk_id", None) is not None


@contextmanager
def quiet() -> Iterator[None]:
    """Inside, watched models do not print the unknown-words line (the explorer shows it itself)."""
    global _quiet
    before, _quiet = _quiet, True
    try:
        yield
    finally:
        _quiet = before


_quiet = False
_announced: tuple[object, set[str]] = (None, set())  # (the cell it was printed in, the lines printed there)


def _to_tokens_with_warning(self, input, *args, **kwargs):
    if not _quiet and (isinstance(input, str) or (isinstance(input, list) and all(isinstance(i, str) for i in input))):
        warn_unknown_words(self, input)
    return type(self).to_tokens(self, input, *args, **kwargs)


def _announce(line: str) -> None:
    """Print `line`, unless this notebook cell already printed it (to_str_tokens and run_with_cache on the
    same prompt would repeat it). Outside IPython, each distinct line prints once per process."""
    global _announced
    cell = _current_cell()
    if _announced[0] != cell:
        _announced = (cell, set())
    if line not in _announced[1]:
        _announced[1].add(line)
        print(line)


def _current_cell() -> object:
    """The running cell's execution count in IPython, else None."""
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    shell = get_ipython()
    return None if shell is None else shell.execution_count


def _message(tokenizer, unknown: list[str]) -> str:
    if not unknown:
        return ""
    known = vocabulary(tokenizer)
    listed = ", ".join(repr(word) for word in unknown[:MAX_LISTED])
    if len(unknown) > MAX_LISTED:
        listed += f" and {len(unknown) - MAX_LISTED} more"
    call = "vocabulary()" if known == vocabulary() else "vocabulary(model)"
    word, its = ("word", "its") if len(unknown) == 1 else ("words", "their")
    return (f"Unknown {word} {listed}: not among the {len(known)} words this model knows; it sees {tokenizer.unk_token} "
            f"in {its} place. List the words it knows: from utils import vocabulary; {call}")


def _tokenizer(model_or_tokenizer) -> PreTrainedTokenizerBase:
    tokenizer = getattr(model_or_tokenizer, "tokenizer", model_or_tokenizer)
    if tokenizer is None or not hasattr(tokenizer, "get_vocab"):
        raise TypeError(f"expected a model with a tokenizer, or a tokenizer; got {type(model_or_tokenizer).__name__}")
    return tokenizer
