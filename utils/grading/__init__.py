"""The grading command's parts (`python -m utils.grade`; that module's docstring has the usage).

- `masters`: each notebook's master, as the student version the build generates from solutions/, with
  its answer cells, check cells, declared points and a fingerprint;
- `restore`: a submission read, identified and rebuilt on its master: the learner's answer cells in
  the master's order, every other cell the master's (as nbgrader's OverwriteCells does);
- `scan`: flags from a static reading of the learner's code (a redefined `check`, a reference import, ...);
- `zygote`, `runner`, `guard`: a warm process that forks one sandboxed process per submission, which
  runs the rebuilt notebook under an audit hook, resource limits and no network, and logs verdicts;
- `results`: a finished run's verdicts turned into points, the results store that makes reruns resume,
  and the CSV, JSON report and feedback files.
"""
