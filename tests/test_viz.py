"""utils.viz: small offline circuitsvis views, the bundle sent to the page but not kept, the heatmap, the explorer."""

import json
import re
import sys
import types
from pathlib import Path

import IPython.display
import nbformat

import circuitsvis
import pytest
import torch
from matplotlib.figure import Figure

from utils import viz
from utils.models import build_native

TOKENS = ["<|endoftext|>", "the", "cat", "sat"]
WORDS = ["<|endoftext|>", "<pad>", "<unk>", "the", "cat", "sat", "on", "a", "mat", "dog"]
TINY = dict(d_model=32, d_head=8, n_heads=4, n_layers=2, n_ctx=16, d_vocab=len(WORDS), attn_only=True,
            act_fn="gelu", normalization_type="LN", seed=3)


@pytest.fixture(autouse=True)
def fresh_session():
    viz.reset_session()


def _pattern(n_heads: int = 2, n_tokens: int = len(TOKENS)) -> torch.Tensor:
    scores = torch.randn(n_heads, n_tokens, n_tokens, generator=torch.Generator().manual_seed(0))  # [head, q, k]
    future = torch.ones(n_tokens, n_tokens).triu(1).bool()  # [q, k]
    return torch.softmax(scores.masked_fill(future, -torch.inf), -1)


def _props(view_html: str) -> dict:
    """The props object a view passes to CircuitsVis.render, read back as JSON."""
    literal = re.search(r"CircuitsVis\.render\(d\.id,CircuitsVis\.\w+,(\{.*\})\)\}\)\(\)</script>$", view_html).group(1)
    return json.loads(re.sub(r"(?<=[\[,])(-?)\.", r"\g<1>0.", literal))  # ".5" is JavaScript, "0.5" JSON


def test_a_view_is_small_and_names_no_web_address():
    viz.attention_heads(_pattern(), TOKENS)._repr_html_()  # the first view carries the bundle
    for view in (viz.attention_heads(_pattern(), TOKENS), viz.attention_patterns(_pattern(), TOKENS)):
        html = view._repr_html_()
        assert len(html.encode()) < 1024
        assert "unpkg" not in html and "http" not in html


def test_the_bundle_comes_once_per_session_with_the_first_view():
    bundle = f"<script>{viz.circuitsvis_bundle()}</script>"
    first, *later = [viz.attention_heads(_pattern(), TOKENS)._repr_html_() for _ in range(3)]
    assert first.startswith(bundle) and first.count(bundle) == 1 and "unpkg" not in first
    assert all("CircuitsVis.render" in html and bundle not in html and len(html) < 1024 for html in later)
    viz.reset_session()  # a new kernel session
    assert viz.attention_patterns(_pattern(), TOKENS)._repr_html_().startswith(bundle)


def test_in_colab_every_view_carries_the_bundle(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", object())  # each Colab output is its own frame
    views = [viz.attention_heads(_pattern(), TOKENS)._repr_html_() for _ in range(2)]
    assert all(html.startswith(f"<script>{viz.circuitsvis_bundle()}</script>") for html in views)


def test_load_circuitsvis_sends_the_bundle_so_views_need_not():
    loader = viz.load_circuitsvis()
    assert loader._repr_html_() == f"<script>{viz.circuitsvis_bundle()}</script>"
    assert "<script>\"use strict\"" not in viz.attention_heads(_pattern(), TOKENS)._repr_html_()
    assert "not kept in the saved notebook" in repr(loader)


class _Frontend:
    """Stands in for IPython.display.display and a notebook's output area: an update replaces its output."""

    def __init__(self):
        self.outputs, self.sent = [], []  # what the notebook holds; every payload that reached the page

    def display(self, data, raw=False, display_id=None):
        assert raw
        output = dict(data)
        self.outputs.append(output)
        self.sent.append(output["text/html"] if "text/html" in output else output["text/plain"])
        if display_id:
            def update(new, raw=False):
                assert raw
                output.clear()
                output.update(new)
                self.sent.append(new["text/html"])
            return types.SimpleNamespace(update=update)

    def take(self) -> tuple[list[dict], list[str]]:
        taken = self.outputs, self.sent
        self.outputs, self.sent = [], []
        return taken


@pytest.fixture
def notebook(monkeypatch):
    """A kernel with a browser: a shell whose execution count names the running cell, and a fake frontend."""
    shell, frontend = types.SimpleNamespace(execution_count=1, kernel=object()), _Frontend()
    monkeypatch.setattr(viz, "_kernel_shell", lambda: shell)
    monkeypatch.setattr(IPython.display, "display", frontend.display)
    return shell, frontend


def test_in_a_notebook_the_bundle_reaches_the_page_and_only_a_note_is_kept(notebook):
    shell, frontend = notebook
    bundle = f"<script>{viz.circuitsvis_bundle()}</script>"
    for view in (viz.attention_heads(_pattern(), TOKENS), viz.attention_patterns(_pattern(), TOKENS)):
        view._ipython_display_()  # two views in one cell
    outputs, sent = frontend.take()
    assert sent[:2] == [bundle, viz.BUNDLE_NOTE]  # the page ran the bundle, then the note replaced it
    assert [output["text/html"] for output in outputs][0] == viz.BUNDLE_NOTE and len(outputs) == 3
    assert [output["text/plain"] for output in outputs] == ["", "attention_heads(2 heads, 4 tokens)",
                                                            "attention_patterns(2 heads, 4 tokens)"]
    assert all(len(json.dumps(output)) < 1024 and "CircuitsVis.render" in output["text/html"] for output in outputs[1:])

    shell.execution_count = 2  # the next cell, or the same cell run again: the page may have been reloaded
    viz.attention_heads(_pattern(), TOKENS)._ipython_display_()
    outputs, sent = frontend.take()
    assert sent[:2] == [bundle, viz.BUNDLE_NOTE] and len(outputs) == 2 and 'id="cv-view-3"' in outputs[1]["text/html"]
    viz.load_circuitsvis()._ipython_display_()
    assert frontend.take() == ([{"text/html": viz.BUNDLE_NOTE, "text/plain": ""}], [bundle, viz.BUNDLE_NOTE])


def test_in_colab_and_in_a_terminal(notebook, monkeypatch):
    shell, frontend = notebook
    monkeypatch.setitem(sys.modules, "google.colab", object())  # each output is its own frame: bundle inline
    viz.attention_heads(_pattern(), TOKENS)._ipython_display_()
    viz.attention_heads(_pattern(), TOKENS)._ipython_display_()
    outputs, _ = frontend.take()
    assert len(outputs) == 2 and all(o["text/html"].startswith(f"<script>{viz.circuitsvis_bundle()}</script>")
                                     for o in outputs)
    monkeypatch.setattr(viz, "_kernel_shell", lambda: None)  # IPython in a terminal: no page to draw in
    viz.attention_heads(_pattern(), TOKENS)._ipython_display_()
    viz.load_circuitsvis()._ipython_display_()
    assert frontend.take()[0] == [{"text/plain": "attention_heads(2 heads, 4 tokens)"}]


def test_a_notebook_run_by_a_kernel_stores_small_outputs(tmp_path):
    """Executed with nbclient (as CI and utils.authoring.execute do), two view cells store a few KB, no bundle."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import torch\nfrom utils import viz\n"
                                          "pattern = torch.softmax(torch.randn(2, 4, 4), -1).tril()\n"
                                          f"tokens = {TOKENS!r}"),
                nbformat.v4.new_code_cell("viz.attention_heads(pattern, tokens)"),
                nbformat.v4.new_code_cell("display(viz.attention_heads(pattern, tokens))\n"
                                          "viz.attention_patterns(pattern, tokens)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    nbformat.write(nb, tmp_path / "views.ipynb")

    assert (tmp_path / "views.ipynb").stat().st_size < 10_000  # 1.3 MB when the bundle was kept
    html = [[output["data"]["text/html"] for output in cell.outputs] for cell in nb.cells[1:]]
    assert html[0][0] == html[1][0] == viz.BUNDLE_NOTE  # each cell run sent the bundle, and kept the note
    assert [len(outputs) for outputs in html] == [2, 3]
    assert all("CircuitsVis.render" in view and len(view) < 1024 for outputs in html for view in outputs[1:])


def test_the_bundle_is_the_wheels_iife_js():
    wheel_js = (Path(circuitsvis.__file__).parent / "dist" / "cdn" / "iife.js").read_text(encoding="utf-8")
    bundle = viz.circuitsvis_bundle()
    assert "</script" not in bundle  # would end the inline <script> early
    assert bundle.replace("<\\/script", "</script") == wheel_js
    assert bundle.startswith('"use strict";var CircuitsVis=')  # a classic script defines window.CircuitsVis


def test_element_ids_count_up_and_repeat_in_a_fresh_session():
    def session() -> list[str]:
        viz.reset_session()
        return [viz.attention_heads(_pattern(), TOKENS)._repr_html_() for _ in range(2)]

    first = session()
    assert [re.search(r'<div id="([\w-]+)"', html).group(1) for html in first] == ["cv-view-1", "cv-view-2"]
    assert session() == first


def test_props_carry_the_pattern_and_tokens_safely():
    tokens = ["<|endoftext|>", "<bos>", "a&b", "</script>"]
    pattern = _pattern(3, len(tokens))
    heads = viz.attention_heads(pattern, tokens, head_names=["L0H0", "L0H1", "L0H2"])._repr_html_()
    heads = heads.split("</script>", 1)[1]  # after the bundle
    patterns = viz.attention_patterns(pattern, tokens)._repr_html_()

    for html in (heads, patterns):
        assert html.count("</script>") == 1 and "<bos>" not in html
        assert torch.allclose(torch.tensor(_props(html)["attention"]), pattern, atol=5e-4)
    assert _props(heads)["tokens"] == tokens  # AttentionHeads draws tokens as text
    assert _props(heads)["attentionHeadNames"] == ["L0H0", "L0H1", "L0H2"]
    assert _props(patterns)["tokens"] == ["&lt;|endoftext|&gt;", "&lt;bos&gt;", "a&amp;b", "&lt;/script&gt;"]  # as HTML


def test_text_repr_is_stable():
    assert repr(viz.attention_heads(_pattern(), TOKENS)) == "attention_heads(2 heads, 4 tokens)"


@pytest.mark.parametrize("pattern, tokens, head_names, message", [
    (torch.rand(4, 4), TOKENS, None, r"shape \(4, 4\); expected \[head, query, key\] = \[n_heads, 4, 4\] for 4 tokens"),
    (torch.rand(1, 2, 4, 4), TOKENS, None, r"batch dimension.*\[0\]"),
    (torch.rand(2, 5, 5), TOKENS, None, r"shape \(2, 5, 5\); expected .*\[n_heads, 4, 4\]"),
    (torch.rand(2, 4, 3), TOKENS, None, r"shape \(2, 4, 3\)"),
    (torch.full((2, 4, 4), torch.nan), TOKENS, None, "NaN"),
    (torch.rand(2, 4, 4), "the cat", None, "tokens must be a list of strings"),
    (torch.rand(2, 4, 4), TOKENS, ["a"], "got 1 head names for 2 heads"),
])
@pytest.mark.parametrize("make_view", [viz.attention_heads, viz.attention_patterns])
def test_bad_input_is_a_clear_error(make_view, pattern, tokens, head_names, message):
    with pytest.raises(ValueError, match=message):
        make_view(pattern, tokens, head_names=head_names)


def test_plot_attention_draws_a_labelled_heatmap():
    fig = viz.plot_attention(_pattern()[0], TOKENS, "layer 0, head 1")
    heatmap, colorbar = fig.axes
    assert isinstance(fig, Figure) and heatmap.get_title() == "layer 0, head 1"
    assert [label.get_text() for label in heatmap.get_xticklabels()] == TOKENS
    assert [label.get_text() for label in heatmap.get_yticklabels()] == TOKENS
    assert "key" in heatmap.get_xlabel() and "query" in heatmap.get_ylabel()
    assert colorbar.get_ylabel() == "attention weight"
    with pytest.raises(ValueError, match=r"expected one head's \[query, key\] = \[4, 4\]"):
        viz.plot_attention(_pattern(), TOKENS, "all heads")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A random 2-layer, 4-head model with a word-level tokenizer that prepends <|endoftext|>."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single="<|endoftext|> $A",
                                                             special_tokens=[("<|endoftext|>", 0)])
    folder = tmp_path_factory.mktemp("tokenizer")
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                            pad_token="<pad>", unk_token="<unk>").save_pretrained(str(folder))
    return build_native(TINY, AutoTokenizer.from_pretrained(str(folder)))  # the bridge needs a saved tokenizer


def test_explorer_redraws_the_selected_head(tiny_model, monkeypatch):
    drawn, plot = [], viz.plot_attention

    def recording_plot(pattern, tokens, title):
        drawn.append((pattern, tokens, title))
        return plot(pattern, tokens, title)

    monkeypatch.setattr(viz, "plot_attention", recording_plot)
    explorer = viz.attention_explorer(tiny_model, "the cat sat on a mat")
    first_png = bytes(explorer.image.value)
    assert first_png.startswith(b"\x89PNG") and explorer.status.value == ""

    explorer.layer.value, explorer.head.value = 1, 2
    _, cache = tiny_model.run_with_cache("the cat sat on a mat")
    pattern, tokens, title = drawn[-1]
    assert title == "layer 1, head 2" and tokens == ["<|endoftext|>", "the", "cat", "sat", "on", "a", "mat"]
    assert torch.allclose(pattern, cache["blocks.1.attn.hook_pattern"][0, 2])
    assert bytes(explorer.image.value) != first_png and explorer.status.value == ""
    assert repr(explorer) == "AttentionExplorer(2 layers, 4 heads)"


def test_explorer_reruns_on_a_new_prompt_and_reports_bad_ones(tiny_model):
    explorer = viz.attention_explorer(tiny_model)
    explorer.prompt.value = "a zebra"  # this tokenizer's 7 words are not the course's: vocabulary(model) lists them
    assert explorer.notice.value == ("Unknown word 'zebra': not among the 7 words this model knows; it sees &lt;unk&gt; "
                                     "in its place. List the words it knows: from utils import vocabulary; "
                                     "vocabulary(model)")
    assert explorer._tokens == ["<|endoftext|>", "a", "<unk>"] and explorer.status.value == ""
    explorer.prompt.value = "a dog"
    assert explorer._tokens == ["<|endoftext|>", "a", "dog"] and explorer.status.value == explorer.notice.value == ""
    explorer.prompt.value = " ".join(["the cat"] * 10)  # 21 tokens, more than n_ctx = 16
    assert explorer.status.value == "ValueError: the prompt is 21 tokens; this model reads at most 16"
    assert explorer._tokens == ["<|endoftext|>", "a", "dog"]  # the last good prompt stays shown
