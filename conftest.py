"""Repository-wide pytest set-up, loaded for the unit tests and for nbval's notebook items alike.

nbval compares each chapter's outputs exactly; a cell whose metadata declares a
``numeric_tolerance`` (a trained metric that moves in the last digits with the numerical kernels)
is compared within it instead. The rule lives in ``scripts/nboutputs.py``, which
``python scripts/book.py portability`` uses too.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "scripts"))  # nboutputs, for the tests too

import nboutputs  # noqa: E402


def pytest_configure(config):
    if config.pluginmanager.hasplugin("nbval"):
        nboutputs.install_nbval_tolerance()
