"""Kernels for running notebooks from Python: always this interpreter's environment.

A "python3" kernel spec installed in the user's Jupyter folder may point at another environment (an
older clone, another virtual environment), and it takes precedence over this one's. Tools and tests
that execute notebooks should run the code of the checkout they belong to, as nbval's
--nbval-current-env does, so they use `notebook_client`.
"""

from __future__ import annotations

from pathlib import Path

import ipykernel.kernelspec
import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

KERNEL_NAME = "python3"


class CurrentEnvironmentSpecs(KernelSpecManager):
    """Kernel specs in which "python3" is always this interpreter's ipykernel."""

    def get_kernel_spec(self, kernel_name: str):
        if kernel_name == KERNEL_NAME:
            return self.kernel_spec_class(resource_dir=ipykernel.kernelspec.RESOURCES, **ipykernel.kernelspec.get_kernel_dict())
        return super().get_kernel_spec(kernel_name)


class CurrentEnvironmentKernelManager(AsyncKernelManager):
    def __init__(self, **kwargs):
        kwargs.setdefault("kernel_spec_manager", CurrentEnvironmentSpecs())
        super().__init__(**kwargs)


def notebook_client(notebook: nbformat.NotebookNode, cwd: Path, timeout_s: int, **kwargs) -> NotebookClient:
    """An nbclient client that runs `notebook` in this environment's Python, started in `cwd`."""
    return NotebookClient(notebook, timeout=timeout_s, kernel_name=KERNEL_NAME,
                          kernel_manager_class=CurrentEnvironmentKernelManager,
                          resources={"metadata": {"path": str(cwd)}}, **kwargs)
