"""The course's word-level tokenizer: one token per word of utils.corpus, BOS prepended on encode.

Saved with every course model in Hugging Face format (tokenizer.json + tokenizer_config.json with
"tokenizer_class": "PreTrainedTokenizerFast"), so `AutoTokenizer.from_pretrained(folder)` and
TransformerBridge load it offline.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from utils.corpus import BOS, PAD, UNK, token_ids

MAX_LENGTH = 64


def build_tokenizer() -> PreTrainedTokenizerFast:
    """The word-level tokenizer over `corpus.token_ids()` (BOS 0, PAD 1, UNK 2), in memory."""
    ids = token_ids()
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
