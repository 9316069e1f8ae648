"""Unknown words: the course models' vocabulary is one call away, and a prompt with words outside it says so.

The course tokenizer is word-level: a word it does not know becomes <|unk|> without a sound. Models
loaded by load_model print one line naming those words whenever text enters them; GPT-2's byte-level
BPE has no unknown token, so it is left alone.
"""

import types

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

import utils
from utils import corpus, models, tokenizer, viz
from utils.corpus import UNK

TINY = dict(d_model=16, d_head=8, n_heads=2, n_layers=1, n_ctx=32, d_vocab=len(corpus.token_ids()), attn_only=True,
            act_fn="gelu", normalization_type="LN", seed=0)


@pytest.fixture(autouse=True)
def fresh_announcements(monkeypatch):
    monkeypatch.setattr(tokenizer, "_announced", (None, set()))


@pytest.fixture(scope="module")
def course_tokenizer():
    return tokenizer.build_tokenizer()


@pytest.fixture(scope="module")
def byte_level_bpe():
    """A GPT-2-like tokenizer, built offline: byte-level BPE whose unk_token is <|endoftext|>, as GPT-2's is."""
    from tokenizers import Tokenizer, decoders, models as tok_models, pre_tokenizers, trainers

    bpe = Tokenizer(tok_models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(["when mary and john went to the store"] * 5, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   unk_token="<|endoftext|>")


@pytest.fixture(scope="module")
def watched_model(tmp_path_factory):
    """A random one-layer model with the course tokenizer, loaded through load_model as learners load one."""
    folder = tmp_path_factory.mktemp("models")
    model = models.build_native(TINY)
    tokenizer.save_tokenizer(folder / "tiny-words")
    models.save_native(model, TINY, folder / "tiny-words")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(models, "MODELS_DIR", folder)
        return models.load_model("tiny-words")


def test_the_vocabulary_is_one_call_away():
    words = utils.vocabulary()
    assert words == sorted(words) == corpus.vocabulary() and len(words) == 590
    assert {"the", "mary", "cat", ".", ","} <= set(words) and UNK not in words
    assert utils.unknown_words is tokenizer.unknown_words


@pytest.mark.parametrize("name", ["course-lm", "attn-only-2l"])
def test_every_shipped_tokenizer_has_the_course_vocabulary(name):
    shipped = AutoTokenizer.from_pretrained(str(models.MODELS_DIR / name))
    assert tokenizer.vocabulary(shipped) == tokenizer.vocabulary()


def test_unknown_words_are_named_as_typed_once_each_in_order(course_tokenizer):
    unknown = tokenizer.unknown_words
    assert unknown(course_tokenizer, "the cat sat on the mat") == ["sat", "mat"]
    assert unknown(course_tokenizer, "The Cat SAT on the mat. The cat sat!") == ["SAT", "mat", "sat", "!"]
    assert unknown(course_tokenizer, ["a zebra", "the zebra and a yak"]) == ["zebra", "yak"]
    assert unknown(course_tokenizer, "when mary and john went to the store , john gave a drink to mary") == []
    assert unknown(course_tokenizer, f"<|endoftext|> the {UNK}") == []  # special tokens typed on purpose
    assert unknown(course_tokenizer, "") == []
    with pytest.raises(TypeError, match="a string or a list of strings"):
        unknown(course_tokenizer, 3)


def test_the_course_prompts_use_only_known_words(course_tokenizer):
    prompts = [viz.DEFAULT_PROMPT, "when mary and john went to the store , john gave a drink to"]  # explorer, nb 00
    prompts += [prompt.text for prompt in corpus.ioi_prompts(n=50, seed=0)]
    assert tokenizer.unknown_words(course_tokenizer, prompts) == []


def test_the_message_is_one_line_that_says_what_to_do(course_tokenizer):
    message = tokenizer.unknown_words_message(course_tokenizer, "the cat sat on the mat")
    assert message == ("Unknown words 'sat', 'mat': not among the 590 words this model knows; it sees <|unk|> in "
                       "their place. List the words it knows: from utils import vocabulary; vocabulary()")
    assert tokenizer.unknown_words_message(course_tokenizer, "the zebra").startswith(
        "Unknown word 'zebra': not among the 590 words this model knows; it sees <|unk|> in its place. ")
    assert tokenizer.unknown_words_message(course_tokenizer, "the cat") == ""
    many = tokenizer.unknown_words_message(course_tokenizer, " ".join(f"w{i}" for i in range(25)))
    assert "'w9' and 15 more:" in many and "'w10'" not in many and "\n" not in many


def test_a_byte_level_tokenizer_has_no_unknown_words(byte_level_bpe):
    text = "The zebra sat on the mat. <|endoftext|> Ünïcödé"
    assert tokenizer.unknown_words(byte_level_bpe, text) == []
    assert tokenizer.unknown_words_message(byte_level_bpe, text) == ""
    assert not tokenizer.may_have_unknown_words(byte_level_bpe)
    hub_like = types.SimpleNamespace(tokenizer=byte_level_bpe, to_tokens="untouched")
    assert tokenizer.watch_prompts(hub_like).to_tokens == "untouched"


def test_a_loaded_course_model_says_so_once_per_cell(watched_model, capsys, monkeypatch):
    line = tokenizer.unknown_words_message(watched_model, "the zebra")
    cell = [1]
    monkeypatch.setattr(tokenizer, "_current_cell", lambda: cell[0])

    tokens = watched_model.to_tokens("the zebra")
    assert watched_model.to_str_tokens("the zebra") == ["<|endoftext|>", "the", UNK]
    watched_model.run_with_cache("the zebra")
    assert capsys.readouterr().out == line + "\n"  # three calls in one cell: one line

    cell[0] = 2  # the learner runs the cell again
    watched_model("the zebra")
    watched_model.to_tokens(["a yak", "the cat"])
    assert capsys.readouterr().out.splitlines() == [line, line.replace("'zebra'", "'yak'")]

    watched_model.to_tokens("the cat")  # known words, and tokens rather than text: silent
    watched_model.to_str_tokens(tokens)
    watched_model(tokens)
    assert capsys.readouterr().out == ""
    assert tokens.tolist() == [[0, corpus.token_ids()["the"], 2]]


def test_the_explorer_shows_the_line_and_does_not_print_it(watched_model, capsys):
    explorer = viz.attention_explorer(watched_model, "the zebra sat")
    assert explorer.notice.value == ("Unknown words 'zebra', 'sat': not among the 590 words this model knows; "
                                     "it sees &lt;|unk|&gt; in their place. List the words it knows: "
                                     "from utils import vocabulary; vocabulary()")
    assert explorer.status.value == "" and explorer._tokens == ["<|endoftext|>", "the", UNK, UNK]
    explorer.prompt.value = "the cat"
    assert explorer.notice.value == "" and explorer._tokens == ["<|endoftext|>", "the", "cat"]
    assert capsys.readouterr().out == ""
