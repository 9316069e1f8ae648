"""utils.viz views render offline in a real browser: headless Chromium, a plain page and JupyterLab.

Skipped where Debian's chromium is not installed (`apt-get install chromium`). No network is used:
the page, the server and the browser are all local, and the circuitsvis bundle comes from the wheel.

The JupyterLab test is a learner's session: Chromium opens a notebook, runs every cell with a live
kernel (driven through the DevTools protocol, with the app exposed as window.jupyterapp), the views
render, and the notebook JupyterLab then saves holds a few KB rather than the 1.3 MB bundle.
"""

import json
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
import websocket  # websocket-client, a jupyter_server dependency

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
    env = _isolated_jupyter_env(tmp_path)
    notebook = tmp_path / "root" / "views.ipynb"
    _write_notebook(notebook)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         "--IdentityProvider.token=", "--ServerApp.allow_root=True", f"--ServerApp.root_dir={notebook.parent}",
         "--LabApp.expose_app_in_browser=True"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    browser = None
    try:
        _wait_for_server(port)
        browser = _DevTools(tmp_path / "profile")
        lab = _Lab(browser, f"http://127.0.0.1:{port}/lab/tree/{notebook.name}", notebook.name)
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
        _stop(server)


def _stop(server: subprocess.Popen) -> None:
    """Stop a process group: the server (it shuts down the kernel it started) or the browser; kill it if it hangs."""
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


def _write_notebook(path: Path) -> None:
    """A notebook, not yet run, with an AttentionHeads view in one cell and an AttentionPatterns view in another."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(VIEWS_CODE.format(tokens=TOKENS)),
                nbformat.v4.new_code_cell("viz.attention_heads(pattern, tokens)"),
                nbformat.v4.new_code_cell("viz.attention_patterns(pattern, tokens)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir()
    nbformat.write(nb, path)


class _DevTools:
    """Headless Chromium driven through the DevTools protocol: evaluate JavaScript, reload, screenshot."""

    def __init__(self, profile: Path):
        port = _free_port()
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", f"--remote-debugging-port={port}", "--window-size=1000,1400"]
        self.process = subprocess.Popen([str(CHROMIUM), *flags, "about:blank"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        targets = _poll(lambda: json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2)), 30)
        page = next(target for target in targets if target["type"] == "page")
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=120, suppress_origin=True)
        self.calls = 0

    def call(self, method: str, **params) -> dict:
        self.calls += 1
        self.socket.send(json.dumps({"id": self.calls, "method": method, "params": params}))
        while True:  # skip events
            message = json.loads(self.socket.recv())
            if message.get("id") == self.calls:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def js(self, expression: str):
        """The value of a JavaScript expression (a promise is awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 90):
        """The expression's value once it is truthy."""
        return _poll(lambda: self.js(expression) or None, timeout)

    def reload(self) -> None:
        self.call("Page.reload", ignoreCache=True)

    def screenshot(self, path: Path) -> None:
        import base64

        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        self.socket.close()
        _stop(self.process)


class _Lab:
    """A notebook open in JupyterLab, in a _DevTools page."""

    def __init__(self, browser: _DevTools, url: str, path: str):
        self.browser = browser
        self.panel = f"[...window.jupyterapp.shell.widgets('main')].find(w => w.context && w.context.path === {path!r})"
        browser.call("Runtime.enable")
        browser.call("Page.navigate", url=url)

    def run_all_cells(self, timeout: float = 120) -> None:
        """Wait for the kernel, run every cell as "Run All" does, and wait until each has run."""
        kernel = f"window.jupyterapp && ({self.panel})?.sessionContext?.session?.kernel"
        self.browser.wait_for(f"{kernel}?.connectionStatus === 'connected' && {kernel}.status === 'idle'")
        self.browser.js(f"(() => {{ const p = {self.panel}; window.jupyterapp.shell.activateById(p.id); "
                        "return window.jupyterapp.commands.execute('notebook:run-all-cells').then(() => true) })()")
        self.browser.wait_for(f"{kernel}.status === 'idle' && ({self.panel}).content.widgets"
                              ".every(cell => cell.model.type !== 'code' || cell.model.executionCount !== null)", timeout)

    def save(self) -> None:
        """Save as the learner would (File > Save): JupyterLab writes its notebook model to disk."""
        self.browser.js(f"({self.panel}).context.save().then(() => true)")


def _poll(probe, timeout: float, step: float = 0.5):
    """The first result of probe() that is not None (errors count as not yet), within timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = probe()
        except OSError:
            result = None
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing within {timeout} s")
        time.sleep(step)


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
