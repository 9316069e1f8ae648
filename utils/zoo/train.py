"""Train a course model: one entry point, one loop (utils/zoo/training.py) for every recipe.

    python -m utils.zoo.train course-lm            # 6-layer GPT-2 on the synthetic corpus (about 30 min)
    python -m utils.zoo.train attn-only-2l         # 2-layer attention-only model with snapshots (about 2 min)
    python -m utils.zoo.train pointer-8            # about a minute on one core
    python -m utils.zoo.train pointer-32           # under ten minutes on one core
    python -m utils.zoo.train NAME --smoke         # seconds-long run of a small variant into a temporary folder
    python -m utils.zoo.train NAME --out DIR --log FILE

Writes the weights and training.json into models/NAME/ (or --out). Always run with OMP_NUM_THREADS=1.
"""

from __future__ import annotations

from utils.zoo import train_lm, train_pointer
from utils.zoo.training import main

RECIPES = {**train_lm.RECIPES, **train_pointer.RECIPES}

if __name__ == "__main__":
    main(RECIPES, doc=__doc__)
