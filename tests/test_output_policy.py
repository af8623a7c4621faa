"""The output policy (README, "After a change"): every number in a stored output survives a change
of machine. Round-off is printed as a bound (``< 1e-12``), never as digits; a decimal number keeps
at most 4 significant digits. The rules live in ``scripts/nboutputs.py``."""

from __future__ import annotations

import json
from pathlib import Path

import nboutputs
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


def test_every_stored_output_follows_the_output_policy():
    found = [v for path in NOTEBOOKS for v in nboutputs.scan_notebook(json.loads(path.read_text()),
                                                                      str(path.relative_to(ROOT)))]
    rules = "".join(f"  {name}: {text}\n" for name, text in nboutputs.RULES.items())
    assert not found, (f"{len(found)} numbers break the output policy (README, 'After a change'):\n{rules}"
                       + "\n".join(map(str, found)))


def _notebook(*cells: dict) -> dict:
    return {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# A chapter"}, *cells],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _cell(*outputs: dict, tags: tuple[str, ...] = (), source: str = "print(x)") -> dict:
    return {"cell_type": "code", "execution_count": 1, "metadata": {"tags": list(tags)},
            "source": source, "outputs": list(outputs)}


def _stream(text: str) -> dict:
    return {"output_type": "stream", "name": "stdout", "text": text}


def _display(mime: str, text: str) -> dict:
    return {"output_type": "display_data", "metadata": {}, "data": {mime: text, "text/plain": "<object>"}}


# The four cells of issue #14 that differed on an AVX2 machine, as they were stored.
ISSUE_14 = [
    "max |score_at - autograd of log_prob_at| = 6.4e-14\n",
    "untrained loss: 0.997 (Monte Carlo over 1297 images) vs 1 exactly\n"
    "batched vs one-by-one outputs: max difference 1.5e-06\n",
    "steps   teacher DDIM   distilled student\n    1        2132.08                1.35\n",
    "NFE   flow matching (Euler)   diffusion (DDIM)\n  1                  468.13            2132.08\n"
    "  8                    4.18              61.88\n",
]


def test_the_prints_of_issue_14_and_other_planted_ones_are_flagged():
    nb = _notebook(
        *[_cell(_stream(text)) for text in ISSUE_14],
        _cell(_display("text/markdown", "the bound **< 6.4e-14** still shows round-off digits")),
        _cell(_display("text/html", "<p>max diff <b>0.0000012</b></p><script>const d = [0.123456];</script>")),
        _cell({"output_type": "execute_result", "execution_count": 1, "metadata": {},
               "data": {"text/plain": "ratio 0.123456"}}),
        _cell(_stream("sum of the probabilities: 1.000000; residual 0.000000\n")),
    )
    found = [(v.cell, v.number, v.rule) for v in nboutputs.scan_notebook(nb, "planted.ipynb")]
    assert found == [
        (1, "6.4e-14", "small"), (2, "1.5e-06", "small"), (3, "2132.08", "digits"),
        (4, "468.13", "digits"), (4, "2132.08", "digits"),
        (5, "6.4e-14", "small"),  # a bound, but not a bare power of ten
        (6, "0.0000012", "small"),  # the digits in the script are data, not text a reader sees
        (7, "0.123456", "digits"),
        (8, "1.000000", "digits"), (8, "0.000000", "digits"),
    ]
    report = str(nboutputs.scan_notebook(nb, "planted.ipynb")[2])
    assert report.startswith("planted.ipynb, cell 3: 2132.08 in '1        2132.08                1.35'")


@pytest.mark.parametrize("text", [
    "max |x - y| < 1e-12", "residual <= 1e-10", "≤ 1e-5", "error &lt; 1e-9", "< 0.000001",
    "1.16x the floor", "2130", "0.0123", "energy ratio 61.88", "L = 1.921 ± 0.039 nats",
    "31,554 parameters, 1,500 steps", "seed 1234567", "torch 2.13.0, python 3.11.9", "10.0.0.1",
    "python3.11/site-packages", "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "0x7f3a2b1c", "latent mean -0.00, 0.000", "alpha_bar_T=4.04e-05", "1.15e-03", "1.0e-5",
    "<Figure size 648x237.6 with 12 Axes>", "2024-05-01", "within e^-15 of its peak", "[0.     0.0001 0.02  ]",
])
def test_allowed_forms_are_not_flagged(text):
    assert nboutputs.policy_violations(text) == []


@pytest.mark.parametrize("text, number, rule", [
    ("6.4e-14", "6.4e-14", "small"), ("max diff 1.5e-06", "1.5e-06", "small"), ("-3e-07", "-3e-07", "small"),
    ("2e-13", "2e-13", "small"), ("0.0000012", "0.0000012", "small"), ("< 6.4e-14", "6.4e-14", "small"),
    ("ratio 2132.08", "2132.08", "digits"), ("0.123456", "0.123456", "digits"), ("10.000", "10.000", "digits"),
    ("-1.4385 nats", "-1.4385", "digits"), ("1,234.5", "1,234.5", "digits"), ("1.2345e-03", "1.2345e-03", "digits"),
    ("1.16000x", "1.16000", "digits"),
])
def test_forbidden_forms_are_flagged(text, number, rule):
    assert [(n.text, r) for n, r in nboutputs.policy_violations(text)] == [(number, rule)]


def test_outputs_nbval_does_not_compare_are_not_scanned():
    """Timings and progress bars are declared variable (nbval ignores them); stored errors fail elsewhere."""
    timing = _stream("trained in 8.3417 s, 173.62it/s\n")
    nb = _notebook(
        _cell(timing, tags=("nbval-ignore-output",)),
        _cell(timing, source="# NBVAL_IGNORE_OUTPUT\ntrain()"),
        _cell(timing, tags=("nbval-skip",)),
        _cell({"output_type": "error", "ename": "ValueError", "evalue": "x = 1.23456", "traceback": ["1.23456"]}),
        {"cell_type": "markdown", "metadata": {}, "source": "A text cell may say 6.4e-14."},
        _cell(_display("image/png", "iVBORw0KGgo1.23456")),
    )
    assert nboutputs.scan_notebook(nb, "ignored.ipynb") == []
    assert nboutputs.scan_notebook(_notebook(_cell(timing)), "checked.ipynb") != []
