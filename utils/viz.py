"""Attention views that work offline: circuitsvis views and a live ipywidgets explorer.

circuitsvis loads its JavaScript from a CDN unless a one-second internet check fails, so its views
are blank offline or behind a firewall, and its offline fallback embeds the 1.3 MB bundle in every
view. Here the bundle that ships in the circuitsvis wheel (`circuitsvis/dist/cdn/iife.js`, which
defines `window.CircuitsVis`) is sent to the page, and each view is a small HTML output that calls
`CircuitsVis.render`.

    attention_heads(pattern, tokens)      # pattern [head, query, key] for one prompt
    attention_patterns(pattern, tokens)   # the same data, with clickable tokens

In a notebook the first view of each cell run sends the bundle as an output of its own and at once
replaces that output with a 90-byte note (a display_id update): the browser has run the script by
then, and the notebook, once saved, keeps the note, not 1.3 MB (tests/test_browser.py checks both in
JupyterLab). So a saved notebook stays small, and its views show again when their cells are run; on
opening it they say "run this cell". Colab shows each output in its own frame, so there every view
carries the bundle. Outside IPython, `_repr_html_` is self-contained: the first view of a session
carries the bundle (reset_session() starts again).

Views show in trusted notebooks: cells you run are trusted. Element ids count up per session
("cv-view-1", ...), so stored outputs are reproducible.

`attention_explorer(model)` needs a live kernel instead: a prompt box, layer and head selectors and
a matplotlib heatmap (`plot_attention`); it says which words of the prompt the model does not know.
"""

from __future__ import annotations

import html
import io
import json
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from utils.tokenizer import quiet, unknown_words_message

DEFAULT_PROMPT = "when mary and john went to the store , john gave a drink to mary"
ID_PREFIX = "cv-view-"
NOT_RUN = "Attention view: run the cell to show it (untrusted notebooks do not run scripts)."
NOT_LOADED = ("Attention view: run this cell to show it (a saved notebook does not keep the circuitsvis script "
              "it needs).")
BUNDLE_NOTE = "<!-- circuitsvis ran in this page; the saved notebook does not keep its 1.3 MB script -->"
VIEW_TEMPLATE = (
    '<div id="{id}" style="margin:15px 0">{not_run}</div>'
    "<script>(function(){{var s=document.currentScript,d=s&&s.previousElementSibling;"
    'if(!d||d.id!=="{id}")d=document.getElementById("{id}");'
    'if(!window.CircuitsVis){{d.textContent="{not_loaded}";return}}'
    'd.id+="-"+Math.random().toString(36).slice(2);'  # unique on a page with several notebooks
    "CircuitsVis.render(d.id,CircuitsVis.{component},{props})}})()</script>"
)


@dataclass
class _Session:
    """What this kernel has displayed so far."""

    views: int = 0
    bundle_sent: bool = False  # _repr_html_: a view already carried the bundle
    bundle_cell: object = None  # notebooks: the cell run (execution count) that last sent the bundle


_session = _Session()


def reset_session() -> None:
    """Forget what was displayed: the next view carries the bundle again and ids restart at 1."""
    _session.views = 0
    _session.bundle_sent = False
    _session.bundle_cell = None


@cache
def circuitsvis_bundle() -> str:
    """The circuitsvis JavaScript bundle from the installed wheel, safe to inline in a <script>."""
    import circuitsvis

    source = (Path(circuitsvis.__file__).parent / "dist" / "cdn" / "iife.js").read_text(encoding="utf-8")
    return source.replace("</script", "<\\/script")  # the same JavaScript; no early end of the tag


def _bundle_html() -> str:
    """The bundle as a classic <script>, which defines window.CircuitsVis for the whole page."""
    _session.bundle_sent = True
    return f"<script>{circuitsvis_bundle()}</script>"


def _needs_bundle() -> bool:
    # Colab shows each output in its own frame, so every view needs its own copy there.
    return not _session.bundle_sent or _in_colab()


def _in_colab() -> bool:
    return "google.colab" in sys.modules


def _kernel_shell():
    """The IPython shell when this runs in a Jupyter kernel (outputs go to a browser), else None."""
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    shell = get_ipython()
    return shell if shell is not None and hasattr(shell, "kernel") else None


def send_bundle_to_page() -> None:
    """Run the bundle in the notebook's page without keeping it in the notebook.

    Displays it as an output with a display_id, then replaces that output with BUNDLE_NOTE. The
    frontend handles the two messages in order and runs the script when it renders the first, so
    window.CircuitsVis is defined before the replacement arrives; the saved notebook holds the note.
    """
    from IPython.display import display

    shell = _kernel_shell()
    _session.bundle_cell = None if shell is None else shell.execution_count
    handle = display({"text/html": _bundle_html(), "text/plain": ""}, raw=True, display_id=True)
    handle.update({"text/html": BUNDLE_NOTE, "text/plain": ""}, raw=True)


def _display(html_text: str, summary: str) -> None:
    """Display a view in IPython: the bundle first when this cell run has not sent it yet."""
    from IPython.display import display

    shell = _kernel_shell()
    if shell is None:  # a terminal: no browser to draw in
        display({"text/plain": summary}, raw=True)
        return
    if _in_colab():
        display({"text/html": _bundle_html() + html_text, "text/plain": summary}, raw=True)
        return
    if _session.bundle_cell is None or _session.bundle_cell != shell.execution_count:
        send_bundle_to_page()
    display({"text/html": html_text, "text/plain": summary}, raw=True)


class CircuitsVisBundle:
    """Displays nothing visible: runs the circuitsvis bundle in the page (see load_circuitsvis)."""

    def _repr_html_(self) -> str:
        return _bundle_html()

    def _ipython_display_(self) -> None:
        if _kernel_shell() is not None:
            send_bundle_to_page()

    def __repr__(self) -> str:
        return "circuitsvis bundle (1.3 MB of JavaScript, sent to the page, not kept in the saved notebook)"


class AttentionView:
    """One circuitsvis view; displaying it renders it (see the module docstring for the bundle)."""

    def __init__(self, component: str, props: str, summary: str):
        self.component = component
        self.props = props  # a JavaScript object literal
        self.summary = summary

    def _view_html(self) -> str:
        _session.views += 1
        return VIEW_TEMPLATE.format(id=f"{ID_PREFIX}{_session.views}", not_run=NOT_RUN, not_loaded=NOT_LOADED,
                                    component=self.component, props=self.props)

    def _repr_html_(self) -> str:
        """Self-contained HTML for pages outside IPython: the session's first view carries the bundle."""
        needs_bundle = _needs_bundle()
        view = self._view_html()
        return _bundle_html() + view if needs_bundle else view

    def _ipython_display_(self) -> None:
        _display(self._view_html(), self.summary)

    def __repr__(self) -> str:
        return self.summary


def load_circuitsvis() -> CircuitsVisBundle:
    """Send the circuitsvis bundle to the page now, as this cell's output, not with the cell's first view.

    Views send it themselves (the first view of each cell run), so this is rarely needed.
    """
    return CircuitsVisBundle()


def attention_heads(pattern: torch.Tensor, tokens: list[str], head_names: list[str] | None = None) -> AttentionView:
    """A circuitsvis AttentionHeads view: a thumbnail per head and one head enlarged, with token axes.

    `pattern` is one prompt's attention, [head, query, key], e.g. `cache["blocks.0.attn.hook_pattern"][0]`;
    `tokens` are its string tokens (`model.to_str_tokens(prompt)`).
    """
    pattern = _check_pattern(pattern, tokens)  # [head, query, key]
    props = {"tokens": _js_strings(tokens), "attention": _js_array(pattern)}  # tokens are drawn as text
    if head_names is not None:
        props["attentionHeadNames"] = _js_strings(_check_head_names(head_names, len(pattern)))
    return AttentionView("AttentionHeads", _js_object(props), _summary("attention_heads", pattern))


def attention_patterns(pattern: torch.Tensor, tokens: list[str], head_names: list[str] | None = None) -> AttentionView:
    """A circuitsvis AttentionPatterns view: all heads overlaid, head thumbnails, clickable tokens.

    Same arguments as `attention_heads`.
    """
    pattern = _check_pattern(pattern, tokens)  # [head, query, key]
    escaped = [html.escape(token, quote=False) for token in tokens]  # this view inserts tokens as HTML
    props = {"tokens": _js_strings(escaped), "attention": _js_array(pattern)}
    if head_names is not None:
        props["headLabels"] = _js_strings(_check_head_names(head_names, len(pattern)))
    return AttentionView("AttentionPatterns", _js_object(props), _summary("attention_patterns", pattern))


def _check_pattern(pattern: torch.Tensor, tokens: list[str]) -> torch.Tensor:
    """The pattern as a float tensor [head, query, key], or a ValueError that says what was expected."""
    if not (isinstance(tokens, list) and all(isinstance(t, str) for t in tokens)):
        raise ValueError("tokens must be a list of strings, e.g. model.to_str_tokens(prompt)")
    pattern = torch.as_tensor(pattern).detach().float().cpu()
    shape = tuple(pattern.shape)
    expected = f"[head, query, key] = [n_heads, {len(tokens)}, {len(tokens)}] for {len(tokens)} tokens"
    if pattern.dim() == 4:
        raise ValueError(f"pattern has shape {shape}, with a batch dimension; expected {expected}: "
                         "pass one prompt's pattern, e.g. cache['blocks.0.attn.hook_pattern'][0]")
    if pattern.dim() != 3 or shape[1:] != (len(tokens), len(tokens)):
        raise ValueError(f"pattern has shape {shape}; expected {expected}")
    if not torch.isfinite(pattern).all():
        raise ValueError("pattern contains NaN or infinite values")
    return pattern


def _check_head_names(head_names: list[str], n_heads: int) -> list[str]:
    if len(head_names) != n_heads:
        raise ValueError(f"got {len(head_names)} head names for {n_heads} heads")
    return [str(name) for name in head_names]


def _summary(kind: str, pattern: torch.Tensor) -> str:
    n_heads, n_tokens, _ = pattern.shape
    return f"{kind}({n_heads} heads, {n_tokens} tokens)"


def _js_number(x: float) -> str:
    """A short JavaScript number to 3 decimals: 0.5 -> ".5", 1.0 -> "1", 0.0 -> "0"."""
    text = f"{x:.3f}".rstrip("0").rstrip(".")
    return text.replace("0.", ".", 1) if text.startswith(("0.", "-0.")) else text


def _js_array(values: torch.Tensor) -> str:
    """A nested JavaScript array literal of the tensor's values, rounded to 3 decimals."""
    def nested(x: list | float) -> str:
        return "[" + ",".join(nested(v) for v in x) + "]" if isinstance(x, list) else _js_number(x)
    return nested(values.tolist())


def _js_strings(strings: list[str]) -> str:
    """A JavaScript array of strings that cannot end or open a tag inside a <script>."""
    text = json.dumps(strings, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _js_object(props: dict[str, str]) -> str:
    return "{" + ",".join(f'"{key}":{value}' for key, value in props.items()) + "}"


def plot_attention(pattern: torch.Tensor, tokens: list[str], title: str) -> Figure:
    """A heatmap of one head's attention, [query, key], with the tokens on both axes.

    The figure is closed in pyplot (so a notebook shows it once, as the cell's value).
    """
    pattern = torch.as_tensor(pattern).detach().float().cpu()  # [query, key]
    if pattern.dim() != 2 or tuple(pattern.shape) != (len(tokens), len(tokens)):
        raise ValueError(f"pattern has shape {tuple(pattern.shape)}; expected one head's [query, key] = "
                         f"[{len(tokens)}, {len(tokens)}] for {len(tokens)} tokens")
    size = 2.5 + 0.3 * len(tokens)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(pattern.numpy(), cmap="Blues", vmin=0, vmax=1)
    labels = [token.replace("$", r"\$") for token in tokens]  # "$" would start mathtext
    ax.set_xticks(range(len(tokens)), labels, rotation=90)
    ax.set_yticks(range(len(tokens)), labels)
    ax.set(title=title, xlabel="key (attended to)", ylabel="query (attending from)")
    fig.colorbar(image, ax=ax, label="attention weight")
    fig.tight_layout()
    plt.close(fig)
    return fig


class AttentionExplorer(widgets.VBox):
    """A prompt box, layer and head selectors, and the selected head's heatmap; needs a live kernel.

    `notice` says, under the prompt box, which words of the prompt the model does not know (they become
    its unknown token); `status` shows what went wrong when a prompt cannot be drawn.
    """

    def __init__(self, model, prompt: str = DEFAULT_PROMPT):
        self.model = model
        self.prompt = widgets.Text(value=prompt, description="prompt", continuous_update=False,
                                   layout=widgets.Layout(width="95%"))
        self.layer = widgets.Dropdown(options=list(range(model.cfg.n_layers)), description="layer")
        self.head = widgets.Dropdown(options=list(range(model.cfg.n_heads)), description="head")
        self.image = widgets.Image(format="png")
        self.notice = widgets.HTML()  # unknown words in the prompt (HTML wraps a long line; a Label cuts it)
        self.status = widgets.Label()  # errors
        self._tokens, self._patterns = [], torch.empty(0)  # str tokens; [layer, head, query, key]
        for control in (self.prompt, self.layer, self.head):
            control.observe(self.refresh, names="value")
        super().__init__([self.prompt, self.notice, widgets.HBox([self.layer, self.head]), self.image, self.status])
        self.refresh()

    def refresh(self, change: dict | None = None) -> None:
        """Redraw the heatmap; rerun the model only when the prompt changed."""
        try:
            if change is None or change["owner"] is self.prompt:
                self._run(self.prompt.value)
            title = f"layer {self.layer.value}, head {self.head.value}"
            fig = plot_attention(self._patterns[self.layer.value, self.head.value], self._tokens, title)
            self.image.value = _png(fig)
            self.status.value = ""
        except Exception as error:  # a widget callback's errors are otherwise invisible
            self.status.value = f"{type(error).__name__}: {error}"

    def _run(self, prompt: str) -> None:
        self.notice.value = html.escape(unknown_words_message(self.model, prompt), quote=False)
        with quiet():  # a watched model would print the line where no one sees it (a widget callback)
            tokens = self.model.to_tokens(prompt, truncate=False)  # [1, position]
        if tokens.shape[1] > self.model.cfg.n_ctx:
            raise ValueError(f"the prompt is {tokens.shape[1]} tokens; this model reads at most {self.model.cfg.n_ctx}")
        with torch.no_grad():
            _, cache = self.model.run_with_cache(tokens, names_filter=lambda name: name.endswith("attn.hook_pattern"))
        self._tokens = self.model.to_str_tokens(tokens[0])
        self._patterns = torch.stack([cache[f"blocks.{layer}.attn.hook_pattern"][0]
                                      for layer in range(self.model.cfg.n_layers)])

    def __repr__(self) -> str:
        return f"AttentionExplorer({self.model.cfg.n_layers} layers, {self.model.cfg.n_heads} heads)"


def attention_explorer(model, prompt: str = DEFAULT_PROMPT) -> AttentionExplorer:
    """An interactive view of `model`'s attention: type a prompt, pick a layer and a head."""
    return AttentionExplorer(model, prompt)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()
