"""Test environment, set before any kernel starts (nbval kernels inherit it): see utils/env.py."""

from utils.env import apply_ci_env

apply_ci_env()
