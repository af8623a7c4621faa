"""The self-grading checks: the reference passes, a stub is "not attempted", and every planted
mistake fails with a hint that names it (never just "wrong")."""

import math

import numpy as np
import pytest
import torch

import diffusion_lab as dl
from diffusion_lab import homework
from diffusion_lab.homework import _engine
from diffusion_lab.homework.checks import SPECS

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", SPECS)
def test_reference_passes_and_stub_is_not_attempted(name):
    spec = SPECS[name]
    assert _engine.run_check(spec, spec.reference).status == "passed"

    def stub(*args):
        raise NotImplementedError()

    result = _engine.run_check(spec, stub)
    assert result.status == "not attempted" and "NotImplementedError" in result.message


@pytest.mark.parametrize("name", [n for n in SPECS if SPECS[n].mistakes])
def test_every_known_mistake_gets_its_own_hint(name):
    spec = SPECS[name]
    for mistake in spec.mistakes:
        result = _engine.run_check(spec, mistake.wrong)
        assert result.status == "failed", mistake.hint
        assert result.message == f"Hint: {mistake.hint}"


@pytest.mark.parametrize("name", [n for n in SPECS if SPECS[n].terms])
def test_a_wrong_coefficient_is_traced_to_its_term(name):
    spec = SPECS[name]
    for term in spec.terms:
        def wrong(*args, term=term):
            args = list(args)
            i = list(spec.cases()[0].args).index(term.input)
            args[i] = 1.5 * args[i]  # this term's coefficient is off by 50 %
            return spec.reference(*args)

        result = _engine.run_check(spec, wrong)
        assert result.status == "failed"
        assert term.name in result.message and term.expected in result.message, result.message


def _gather(schedule, name, t, x):
    return schedule.gather(name, t, x)


@pytest.mark.parametrize(("check", "fn", "expected"), [
    (homework.check_q_sample, lambda s, x0, t, e: _gather(s, "alpha_bar", t, x0) * x0
     + (1 - _gather(s, "alpha_bar", t, x0)).sqrt() * e, "you multiply `x0` by ᾱ_t"),
    (homework.check_q_sample, lambda s, x0, t, e: _gather(s, "alpha_bar", t, x0).sqrt() * x0,
     "the noise term is missing"),
    (homework.check_q_sample, lambda s, x0, t, e: torch.tensor(s.alpha_bar)[t].sqrt() * x0 + e,
     "reshape the (B,) coefficients"),
    (homework.check_q_sample, lambda s, x0, t, e: (_gather(s, "alpha_bar", t, x0).sqrt() * x0).sum(1),
     "wrong shape"),
    (homework.check_posterior_mean, lambda s, xt, x0, t: SPECS["posterior_mean"].reference(s, x0, xt, t),
     "swapped"),
    (homework.check_ddpm_step, lambda s, x, t, e, z: (x - _gather(s, "beta", t, x)
     / (1 - _gather(s, "alpha_bar", t, x)).sqrt() * e) / _gather(s, "alpha", t, x).sqrt()
     + _gather(s, "beta", t, x).sqrt() * z, "at t = 1 Algorithm 2 adds no noise"),
    (homework.check_langevin_step, lambda x, s, e, z: x + e * s + math.sqrt(e) * z, "factor ½ is missing"),
    (homework.check_langevin_step, lambda x, s, e, z: x + e / 2 * s + e * z, "standard deviation √ε"),
    (homework.check_reverse_drift, lambda f, g, s: f - dl.expand_like(g, f) * s, "needs its square"),
    (homework.check_cfg, lambda c, u, w: (1 + w) * c + w * u, "the sign is wrong"),
    (homework.check_ddim_step, lambda x, e, ab, abp: math.sqrt(abp) * (x - math.sqrt(1 - ab) * e) / math.sqrt(ab),
     "the direction term √(1 − ᾱ') ε̂ is missing"),
    (homework.check_gaussian_kl, lambda m1, v1, m2, v2: 1.1 * dl.elbo.gaussian_kl(m1, v1, m2, v2),
     "wrong values: for arguments of shape"),
    (homework.check_ema_update, lambda e, p, d: e.mul_(d).add_((1 - d) * p), "in place"),
    (homework.check_noise_step, lambda x, b, e: None, "forget the `return`"),
    (homework.check_noise_step, lambda x, b, e: (x.numpy(), e.numpy())[0], "not a torch.Tensor"),
    (homework.check_noise_step, lambda x, b, e: x / 0.0, "NaN or infinite"),
])
def test_typical_mistakes_get_a_specific_hint(check, fn, expected):
    result = check(fn)
    assert result.status in ("failed", "error")
    assert expected in result.message, result.message
    assert "Hint" in result.message


def test_results_are_deterministic_and_shown_as_text():
    wrong = lambda x, s, e, z: x + e * s + math.sqrt(e) * z  # noqa: E731
    first, second = homework.check_langevin_step(wrong), homework.check_langevin_step(wrong)
    assert repr(first) == repr(second)
    assert repr(first).startswith("✗ langevin_step: failed. Hint:")
    assert first._repr_mimebundle_() == {"text/plain": repr(first)}


def test_strict_mode_raises_unless_passed(monkeypatch):
    monkeypatch.setenv(_engine.STRICT_ENV, "1")
    homework.check_cfg(SPECS["cfg"].reference)  # passes: no exception
    with pytest.raises(AssertionError, match="other convention"):
        homework.check_cfg(lambda c, u, w: u + w * (c - u))


def test_a_non_function_is_an_error_with_the_signature():
    result = homework.check_q_sample(np.zeros(3))
    assert result.status == "error" and "q_sample(schedule, x0, t, noise)" in result.message
