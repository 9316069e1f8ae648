"""Measurements behind the model card and the acceptance tests (scores, behaviour, causal tracing).

Instructor-side: it holds the answers to several exercises, so a student release leaves it out, and
notebooks never import it. Notebook solutions are checked against it in tests/.
"""
