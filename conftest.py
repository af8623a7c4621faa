"""Repository-wide pytest set-up, loaded for the unit tests and for nbval's notebook items alike.

nbval compares each chapter's outputs exactly; a cell whose metadata declares a
``numeric_tolerance`` (a trained metric that moves in the last digits with the numerical kernels)
is compared within it instead. The rule lives in ``scripts/nboutputs.py``, which
``python scripts/book.py portability`` uses too.
"""

import os
import sys
from pathlib import Path

# The suite runs in two pytest-xdist workers (pyproject's addopts: -n 2 --dist loadfile) on the 2-core
# target. Each worker, and every chapter kernel it starts (kernels inherit the environment), then uses
# one thread: two workers with two threads each would oversubscribe the cores, which stalls PyTorch's
# thread pools for minutes. The chapters' outputs do not depend on the thread count
# (`python scripts/book.py portability` checks the one-thread setting).
if os.environ.get("PYTEST_XDIST_WORKER"):
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"

sys.path.insert(0, str(Path(__file__).resolve().parent / "scripts"))  # nboutputs, for the tests too

import nboutputs  # noqa: E402


def pytest_configure(config):
    if config.pluginmanager.hasplugin("nbval"):
        nboutputs.install_nbval_tolerance()
