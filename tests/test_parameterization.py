import pytest
import torch

import diffusion_lab as dl
from diffusion_lab import parameterization as P


@pytest.fixture
def setup():
    g = torch.Generator().manual_seed(0)
    s = dl.cosine_schedule(100)
    x0 = torch.randn(6, 1, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    t = torch.tensor([1, 5, 20, 50, 80, 99])
    ab = s.gather("alpha_bar", t, x0)
    return s, x0, eps, t, ab, dl.q_sample(s, x0, t, noise=eps)


def test_round_trips_between_eps_x0_v_and_score(setup):
    s, x0, eps, t, ab, x_t = setup
    torch.testing.assert_close(P.x0_from_eps(x_t, eps, ab), x0)
    torch.testing.assert_close(P.eps_from_x0(x_t, x0, ab), eps)
    v = P.v_from_x0_eps(x0, eps, ab)
    torch.testing.assert_close(P.eps_from_v(x_t, v, ab), eps)
    torch.testing.assert_close(P.eps_from_score(P.score_from_eps(eps, ab), ab), eps)


@pytest.mark.parametrize("kind", dl.PARAMETERIZATIONS)
def test_a_perfect_network_of_any_parameterisation_yields_the_true_eps(setup, kind):
    s, x0, eps, t, ab, x_t = setup
    target = P.training_target(kind, x0, eps, ab)
    model = dl.EpsModel(lambda x, tt: target, s, kind)
    torch.testing.assert_close(model(x_t, t), eps)


def test_v_satisfies_its_definition(setup):
    # Salimans & Ho (2022): v = d x_t / d phi with x_t = cos(phi) x0 + sin(phi) eps.
    s, x0, eps, t, ab, x_t = setup
    phi = torch.atan2((1 - ab).sqrt(), ab.sqrt())
    torch.testing.assert_close(P.v_from_x0_eps(x0, eps, ab), -torch.sin(phi) * x0 + torch.cos(phi) * eps)


def test_unknown_parameterization_names_the_choices():
    with pytest.raises(ValueError, match="unknown parameterization 'epsilon'; choose one of: eps, x0, v, score"):
        dl.EpsModel(lambda x, t: x, dl.cosine_schedule(10), "epsilon")
