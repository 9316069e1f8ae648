"""Reference solutions, generated from solutions/ by `python -m utils.authoring.build`."""
