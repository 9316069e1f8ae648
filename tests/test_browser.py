"""utils.viz views render offline in a real browser: headless Chromium, a plain page and JupyterLab.

Skipped where Debian's chromium is not installed (`apt-get install chromium`). No network is used:
the page, the server and the browser are all local, and the circuitsvis bundle comes from the wheel.

The JupyterLab test is a learner's session: Chromium opens a notebook, runs every cell with a live
kernel (driven through the DevTools protocol, with the app exposed as window.jupyterapp), the views
render, and the notebook JupyterLab then saves holds a few KB rather than the 1.3 MB bundle.
"""

import json
import re
import subprocess
import tempfile
from pathlib import Path

import nbformat
import pytest
import torch

from tests.jupyterlab import CHROMIUM, DevTools, Lab, isolated_jupyter_env, start_lab, stop
from utils import viz
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="headless browser check needs /usr/bin/chromium "
                                                              "(Debian: apt-get install chromium)")
SCREENSHOT = Path(tempfile.gettempdir()) / "cv_offline.png"
TOKENS = ["<|endoftext|>", "the", "cat", "sat"]
VIEWS_CODE = """import torch
from utils import viz
pattern = torch.softmax(torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(0)), -1).tril()  # [head, q, k]
tokens = {tokens!r}"""
SAVED_LIMIT = 100_000  # bytes; the notebook below saved 1.37 MB when the bundle stayed in the first view's output


def _pattern() -> torch.Tensor:
    return torch.softmax(torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(0)), -1).tril()  # [head, q, k]


def _chromium(url: str, profile: Path, *extra: str, budget_ms: int = 5000) -> str:
    """Load `url` in headless Chromium, with no network services, and return what it printed."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", "--window-size=1000,1400"]
    done = subprocess.run([str(CHROMIUM), *flags, *extra, url], capture_output=True, text=True, timeout=60)
    return done.stdout


def _assert_rendered(dom: str, view: int, component_text: str) -> None:
    """The view's placeholder div was renamed by its script and filled by circuitsvis."""
    assert f'id="{viz.ID_PREFIX}{view}"' not in dom, "the view's script did not run"
    match = re.search(rf'<div id="{viz.ID_PREFIX}{view}-[0-9a-z]+"[^>]*>(.*?)</div>\s*<script', dom, re.S)
    assert match, "no rendered view in the page"
    content = match.group(1)
    assert "<canvas" in content and component_text in content
    assert viz.NOT_RUN not in content and viz.NOT_LOADED not in content


def test_views_render_in_a_plain_page(tmp_path):
    viz.reset_session()
    heads = viz.attention_heads(_pattern(), TOKENS)._repr_html_()
    patterns = viz.attention_patterns(_pattern(), TOKENS)._repr_html_()
    page = tmp_path / "views.html"
    page.write_text(f"<!doctype html><meta charset='utf-8'><body>{heads}{patterns}</body>", encoding="utf-8")

    dom = _chromium(page.as_uri(), tmp_path / "profile", "--dump-dom")
    _assert_rendered(dom, 1, "Head Selector")
    _assert_rendered(dom, 2, "&lt;|endoftext|&gt;")  # a token button, spelled as given


def test_views_render_in_jupyterlab_and_the_saved_notebook_stays_small(tmp_path):
    env = isolated_jupyter_env(tmp_path)
    notebook = tmp_path / "root" / "views.ipynb"
    _write_notebook(notebook)
    server, port = start_lab(notebook.parent, env)
    browser = None
    try:
        browser = DevTools(tmp_path / "profile")
        lab = Lab(browser, f"http://127.0.0.1:{port}/lab/tree/{notebook.name}", notebook.name)
        lab.run_all_cells()
        dom = browser.wait_for(f"document.querySelectorAll('div[id^=\"{viz.ID_PREFIX}\"] canvas').length >= 6 "
                               "&& document.documentElement.outerHTML")
        browser.screenshot(SCREENSHOT)
        _assert_rendered(dom, 1, "Head Selector")
        _assert_rendered(dom, 2, "&lt;|endoftext|&gt;")  # a token button, spelled as given
        lab.save()

        saved = nbformat.read(notebook, as_version=4)
        outputs = json.dumps([cell.get("outputs", []) for cell in saved.cells])
        assert notebook.stat().st_size < SAVED_LIMIT and "var CircuitsVis" not in outputs
        assert outputs.count(viz.BUNDLE_NOTE) == 2 and outputs.count("CircuitsVis.render") == 2

        browser.reload()  # the saved outputs, in a fresh page: the views ask to be run again
        text = browser.wait_for(f"document.getElementById('{viz.ID_PREFIX}2') && document.body.innerText")
        assert text.count(viz.NOT_LOADED) == 2
    finally:
        if browser is not None:
            browser.close()
        stop(server)


def _write_notebook(path: Path) -> None:
    """A notebook, not yet run, with an AttentionHeads view in one cell and an AttentionPatterns view in another."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(VIEWS_CODE.format(tokens=TOKENS)),
                nbformat.v4.new_code_cell("viz.attention_heads(pattern, tokens)"),
                nbformat.v4.new_code_cell("viz.attention_patterns(pattern, tokens)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir()
    nbformat.write(nb, path)


