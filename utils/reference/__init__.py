"""Reference solutions, generated from solutions/ by `python -m utils.build`."""
