"""Test environment, set before any kernel starts (nbval kernels inherit it).

One torch thread (2-core machines stall with more), no hub access, no progress bars.
"""

import os

for name, value in {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                    "TQDM_DISABLE": "1"}.items():
    os.environ.setdefault(name, value)
