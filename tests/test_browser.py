"""utils.viz views render offline in a real browser: headless Chromium, a plain page and JupyterLab.

Skipped where Debian's chromium is not installed (`apt-get install chromium`). No network is used:
the page, the server and the browser are all local, and the circuitsvis bundle is inlined.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient

from utils import viz

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="headless browser check needs /usr/bin/chromium "
                                                              "(Debian: apt-get install chromium)")
SCREENSHOT = Path(tempfile.gettempdir()) / "cv_offline.png"
TOKENS = ["<|endoftext|>", "the", "cat", "sat"]
VIEWS_CODE = """import torch
from utils import viz
pattern = torch.softmax(torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(0)), -1).tril()  # [head, q, k]
tokens = {tokens!r}"""


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


def test_views_render_in_jupyterlab_offline(tmp_path):
    env = _isolated_jupyter_env(tmp_path)
    notebook = tmp_path / "root" / "views.ipynb"
    _execute_notebook(notebook, env)
    subprocess.run([sys.executable, "-m", "jupyter", "trust", str(notebook)], env=env, check=True,
                   capture_output=True, timeout=30)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         "--IdentityProvider.token=", "--ServerApp.allow_root=True", f"--ServerApp.root_dir={notebook.parent}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_server(port)
        url = f"http://127.0.0.1:{port}/lab/tree/{notebook.name}"
        dom = _chromium(url, tmp_path / "profile", "--dump-dom", f"--screenshot={SCREENSHOT}", budget_ms=20000)
        _assert_rendered(dom, 1, "Head Selector")
        _assert_rendered(dom, 2, "&lt;|endoftext|&gt;")
    finally:
        _stop(server)


def _stop(server: subprocess.Popen) -> None:
    """Stop the server (it shuts down the kernel it started); kill its process group if it hangs."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def _isolated_jupyter_env(tmp_path: Path) -> dict[str, str]:
    """Jupyter's config, data (trust database), runtime and lab settings in tmp_path, not the user's.

    The lab settings turn off the news feed and update checks, which would try the internet.
    """
    folders = {name: tmp_path / name.lower() for name in
               ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR",
                "JUPYTERLAB_WORKSPACES_DIR", "IPYTHONDIR")}
    notification = (folders["JUPYTERLAB_SETTINGS_DIR"] / "@jupyterlab" / "apputils-extension"
                    / "notification.jupyterlab-settings")
    notification.parent.mkdir(parents=True)
    notification.write_text('{"fetchNews": "false", "checkForUpdates": false}')
    return {**os.environ, **{name: str(folder) for name, folder in folders.items()}, "OMP_NUM_THREADS": "1"}


def _execute_notebook(path: Path, env: dict[str, str]) -> None:
    """Write and run a notebook with one AttentionHeads and one AttentionPatterns view."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(VIEWS_CODE.format(tokens=TOKENS)),
                nbformat.v4.new_code_cell("viz.attention_heads(pattern, tokens)"),
                nbformat.v4.new_code_cell("viz.attention_patterns(pattern, tokens)")]
    path.parent.mkdir()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env)
    nbformat.write(nb, path)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_server(port: int, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not start on port {port} within {timeout} s")
