"""Homework: self-grading programming exercises, student versions of the chapters, and autograding.

In a chapter, a programming exercise is a pair of code cells (the format is documented in
:mod:`diffusion_lab.homework.notebooks` and on the book's "For instructors" page):

* a **solution cell** whose answer sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION``
  (nbgrader's and otter-grader's markers; the student version replaces it by a stub that raises
  ``NotImplementedError``), and
* a **check cell** that calls one of the checks below, e.g. ``homework.check_q_sample(q_sample)``.

A check compares the student's function with the package's reference on fixed random cases and
returns a :class:`CheckResult`: "passed", "not attempted" (the stub), or a hint that says what is
wrong (a shape, a term, a sign convention, or a counter-example), never just "wrong".

For instructors: ``python -m diffusion_lab.homework student ...`` writes student versions and
``python -m diffusion_lab.homework grade ...`` grades a folder of submissions into a CSV table.
"""

from ._engine import STATUSES, CheckResult
from .checks import (
    check_cfg,
    check_consistency_function,
    check_ddim_inversion_step,
    check_ddim_step,
    check_ddpm_step,
    check_dsm_target,
    check_ema_update,
    check_gaussian_kl,
    check_langevin_step,
    check_learned_variance,
    check_noise_step,
    check_ode_drift,
    check_patchify,
    check_posterior_mean,
    check_q_sample,
    check_reverse_drift,
)

__all__ = [
    "STATUSES",
    "CheckResult",
    "check_cfg",
    "check_consistency_function",
    "check_ddim_inversion_step",
    "check_ddim_step",
    "check_ddpm_step",
    "check_dsm_target",
    "check_ema_update",
    "check_gaussian_kl",
    "check_langevin_step",
    "check_learned_variance",
    "check_noise_step",
    "check_ode_drift",
    "check_patchify",
    "check_posterior_mean",
    "check_q_sample",
    "check_reverse_drift",
]
