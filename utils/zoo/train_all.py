"""Train the whole model zoo, `jobs` recipes at a time, and time it.

    python -m utils.zoo.train_all --out /tmp/zoo             # every model, two at a time (2 cores)
    python -m utils.zoo.train_all --out /tmp/zoo --jobs 1    # one after another
    python -m utils.zoo.train_all --out /tmp/zoo --smoke     # the same schedule on seconds-long smoke runs

Each recipe runs in its own process on one thread (OMP_NUM_THREADS=1), so `jobs` processes use `jobs`
cores. The longest recipes start first (longest-processing-time scheduling, by the CPU seconds of the
shipped runs), which keeps the cores busy until the end. Writes OUT/zoo_timing.json: each model's wall
seconds and the whole zoo's. Never writes into models/ unless --out says so. The model card reports the
timing of a run copied to models/zoo_timing.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from utils.models import MODELS_DIR

CLASSIFIERS = "jw-classifiers"


def recipe_names() -> list[str]:
    """Every model the zoo trains: the recipes of utils.zoo.train, and the attention classifiers."""
    from utils.zoo.train import RECIPES

    return sorted(RECIPES) + [CLASSIFIERS]


def shipped_cpu_seconds(name: str) -> float:
    """CPU seconds of the shipped run (its training.json, or the classifiers' summed seconds); 0 if unknown."""
    folder = MODELS_DIR / name
    if name == CLASSIFIERS:
        path = folder / "classifiers.json"
        runs = json.loads(path.read_text()) if path.exists() else {}  # classifier name -> its record
        return sum(run.get("seconds", 0.0) for run in runs.values())
    path = folder / "training.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    return float(record.get("cpu_time_s") or record.get("wall_seconds") or 0.0)


def command(name: str, out: Path, smoke: bool) -> list[str]:
    module = "utils.zoo.train_classifiers" if name == CLASSIFIERS else "utils.zoo.train"
    args = [] if name == CLASSIFIERS else [name]
    return [sys.executable, "-m", module, *args, "--out", str(out / name), *(["--smoke"] if smoke else [])]


def train_one(name: str, out: Path, smoke: bool) -> dict:
    """Run one recipe in its own one-thread process; its output goes to OUT/NAME.log."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    with open(out / f"{name}.log", "w") as log:
        code = subprocess.run(command(name, out, smoke), check=False, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    return {"model": name, "wall_seconds": round(time.perf_counter() - start, 1), "exit_code": code}


def train_all(out: Path, jobs: int = 2, smoke: bool = False) -> dict:
    """Every recipe, longest first, `jobs` at a time: {"jobs", "wall_seconds", "models": [...]}."""
    out.mkdir(parents=True, exist_ok=True)
    names = sorted(recipe_names(), key=shipped_cpu_seconds, reverse=True)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        runs = list(pool.map(lambda name: train_one(name, out, smoke), names))
    import torch

    from utils.zoo.training import cpu_model

    record = {"jobs": jobs, "smoke": smoke, "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
              "cpu_model": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "wall_seconds": round(time.perf_counter() - start, 1), "models": runs}
    (out / "zoo_timing.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the trained models and their logs")
    parser.add_argument("--jobs", type=int, default=2, help="recipes trained at once, one core each (default 2)")
    parser.add_argument("--smoke", action="store_true", help="seconds-long smoke runs (checks the schedule)")
    args = parser.parse_args(argv)
    record = train_all(args.out, args.jobs, args.smoke)
    for run in record["models"]:
        print(f"{run['model']:<16}{run['wall_seconds']:>9.0f} s" + ("" if run["exit_code"] == 0 else "  FAILED"))
    print(f"{'whole zoo':<16}{record['wall_seconds']:>9.0f} s on {args.jobs} core(s)")
    if any(run["exit_code"] for run in record["models"]):
        sys.exit(1)
    return record


if __name__ == "__main__":
    main()
