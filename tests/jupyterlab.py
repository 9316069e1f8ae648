"""A real JupyterLab session driven by headless Chromium, for the browser tests and the Run All benchmark.

JupyterLab is started with the app exposed as window.jupyterapp; Chromium is driven through the
DevTools protocol (websocket-client, a jupyter_server dependency). Everything is local: no network.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import websocket

CHROMIUM = Path("/usr/bin/chromium")


def start_lab(root: Path, env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    """A JupyterLab server on a free local port serving `root`, without a token; returns it and its port."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         "--IdentityProvider.token=", "--ServerApp.allow_root=True", f"--ServerApp.root_dir={root}",
         "--LabApp.expose_app_in_browser=True"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_for_server(port)
    return server, port


def stop(server: subprocess.Popen) -> None:
    """Stop a process group: the server (it shuts down the kernel it started) or the browser; kill it if it hangs."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def isolated_jupyter_env(tmp_path: Path, threads: str | None = "1") -> dict[str, str]:
    """Jupyter's config, data (trust database), runtime and lab settings in tmp_path, not the user's.

    The lab settings turn off the news feed and update checks, which would try the internet. `threads`
    sets OMP_NUM_THREADS for the kernels; None leaves it unset, as a learner's JupyterLab does.
    """
    folders = {name: tmp_path / name.lower() for name in
               ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR",
                "JUPYTERLAB_WORKSPACES_DIR", "IPYTHONDIR")}
    notification = (folders["JUPYTERLAB_SETTINGS_DIR"] / "@jupyterlab" / "apputils-extension"
                    / "notification.jupyterlab-settings")
    notification.parent.mkdir(parents=True)
    notification.write_text('{"fetchNews": "false", "checkForUpdates": false}')
    env = {**os.environ, **{name: str(folder) for name, folder in folders.items()}}
    env.pop("OMP_NUM_THREADS", None)
    env.pop("MKL_NUM_THREADS", None)
    return env if threads is None else {**env, "OMP_NUM_THREADS": threads}


class PageNotReady(RuntimeError):
    """The page was navigating (a reload): ask again."""


class DevTools:
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
                    navigating = "navigated or closed" in str(message["error"])
                    raise (PageNotReady if navigating else RuntimeError)(f"{method}: {message['error']}")
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
        stop(self.process)


class Lab:
    """A notebook open in JupyterLab, in a DevTools page."""

    def __init__(self, browser: DevTools, url: str, path: str):
        self.browser = browser
        self.panel = f"[...window.jupyterapp.shell.widgets('main')].find(w => w.context && w.context.path === {path!r})"
        browser.call("Runtime.enable")
        browser.call("Page.navigate", url=url)

    @property
    def _kernel(self) -> str:
        return f"window.jupyterapp && ({self.panel})?.sessionContext?.session?.kernel"

    def wait_for_kernel(self) -> None:
        self.browser.wait_for(f"{self._kernel}?.connectionStatus === 'connected' && {self._kernel}.status === 'idle'")

    def run_all_cells(self, timeout: float = 120) -> None:
        """Wait for the kernel, run every cell as "Run All" does, and wait until each has run."""
        kernel = self._kernel
        self.wait_for_kernel()
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
        except (OSError, PageNotReady):  # not up yet, or the page is between two documents
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
