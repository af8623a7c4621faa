"""DDIB translation (Su et al. 2023) and CCDF's accelerated start (Chung et al. 2022), on exact denoisers."""

import pytest
import torch

import diffusion_lab as dl

F64 = torch.float64


def _two_gaussians():
    """Two classes N((±2, 0), I): with a label the exact denoiser is that of one Gaussian."""
    means = torch.tensor([[-2.0, 0.0], [2.0, 0.0]], dtype=F64)
    covs = torch.eye(2, dtype=F64).expand(2, 2, 2).clone()
    return dl.GaussianMixture(torch.tensor([0.5, 0.5], dtype=F64), means, covs)


# Steps up to t = 80 of 100: a fixed-point iteration of the inversion step to t contracts by
# σ_t² / (c² s_t² + σ_t²) for a Gaussian class of variance c² (here c² = 1, so 1 − ᾱ_t ≤ 0.91 at t = 80);
# at t = T of the cosine schedule s_T ≈ 0 and the factor is 1: nothing to contract.
STEPS = list(range(10, 81, 10))


def _points(n=64, seed=0):
    x0, labels = _two_gaussians().sample_labelled(n, generator=torch.Generator().manual_seed(seed))
    return x0.to(F64), labels


def test_round_trip_is_exact_in_the_limit_of_fixed_point_iterations():
    den = _two_gaussians().denoiser(dl.cosine_schedule(100))
    x0, labels = _points()
    errors = []
    for iters in (0, 1, 3, 10, 300):
        back = dl.ddib_translate(den, x0, labels, labels, steps=STEPS, fixed_point_iters=iters)
        errors.append((back - x0).abs().max().item())
    assert errors[0] > 1e-2  # one model call per step: the usual inversion is not exact
    assert errors[0] > errors[1] > errors[2] > errors[3]
    # 300 iterations at a factor ≤ 0.91 leave 0.91^300 < 1e-12 of each step's initial error.
    assert errors[4] < 1e-12
    # With the top step at t = T (s_T ≈ 0) the iteration has nothing to contract: not exact.
    top = dl.ddib_translate(den, x0, labels, labels, steps=10, fixed_point_iters=300)
    assert (top - x0).abs().max().item() > 1e-2


def test_cycle_through_another_class_returns_the_input():
    den = _two_gaussians().denoiser(dl.cosine_schedule(100))
    x0, labels = _points(seed=1)
    cycle = dl.ddib_cycle(den, x0, labels, 1 - labels, steps=STEPS, fixed_point_iters=300)
    assert (cycle.cycled - x0).abs().max().item() < 1e-12
    # The translation moved the points towards the other class: by (1 − s_80)(μ_b − μ_a) ≈ ±2.8 in x for
    # the exact ODE stopped at t = 80 (the class means are 4 apart).
    shift = (cycle.translated - x0)[:, 0]
    assert shift[labels == 0].mean().item() > 2 and shift[labels == 1].mean().item() < -2


def test_translate_is_inversion_then_generation():
    gmm = dl.GaussianMixture.ring(8)
    den = gmm.denoiser(dl.cosine_schedule(100))
    x0, labels = gmm.sample_labelled(32, generator=torch.Generator().manual_seed(2))
    target = (labels + 3) % 8
    out, latent = dl.ddib_translate(den, x0.to(F64), labels, target, steps=20, fixed_point_iters=1,
                                    return_latent=True)
    z = dl.ddim_invert(den.replace(labels=labels), x0.to(F64), steps=20, fixed_point_iters=1)
    assert torch.equal(latent, z)
    assert torch.equal(out, dl.ddim_sample(den.replace(labels=target), z, steps=20))
    # Translated points land near the target component (the ring's radius 1.5, components 0.15 wide).
    nearest = torch.cdist(out.float(), gmm.means.float()).argmin(1)
    assert (nearest == target).double().mean().item() > 0.9


def test_ddib_rejects_bad_input():
    den = _two_gaussians().denoiser(dl.cosine_schedule(100))
    x0, labels = _points(8)
    with pytest.raises(ValueError, match="target"):
        dl.ddib_translate(den, x0, labels, 5)
    with pytest.raises(ValueError, match="source"):
        dl.ddib_translate(den, x0, torch.zeros(3, dtype=torch.long), 1)
    with pytest.raises(ValueError, match="fixed_point_iters"):
        dl.ddib_translate(den, x0, 0, 1, fixed_point_iters=-1)
    unconditional = dl.Denoiser(dl.TimeMLP(), dl.cosine_schedule(100))
    with pytest.raises(ValueError, match="class-conditional"):
        dl.ddib_translate(unconditional, x0.float(), 0, 1)


def test_replacement_t_start_at_the_top_is_the_plain_sampler():
    gmm = dl.GaussianMixture.ring(8)
    den = gmm.denoiser(dl.cosine_schedule(50))
    known = gmm.sample(16, generator=torch.Generator().manual_seed(3)).to(F64)
    mask = torch.tensor([False, True])
    z = torch.randn(16, 2, generator=torch.Generator().manual_seed(4), dtype=F64)
    plain = dl.inpaint_sample(den, known, mask, steps=10, x_T=z, generator=torch.Generator().manual_seed(5))
    top = dl.inpaint_sample(den, known, mask, steps=10, x_T=z, t_start=50, generator=torch.Generator().manual_seed(5))
    assert torch.equal(plain, top)


def test_ccdf_start_is_the_forward_noised_observation():
    gmm = dl.GaussianMixture.ring(8)
    den = gmm.denoiser(dl.cosine_schedule(50))
    known = gmm.sample(16, generator=torch.Generator().manual_seed(3)).to(F64)
    mask = torch.tensor([False, True])
    _, path = dl.inpaint_sample(den, known, mask, steps=5, t_start=20, generator=torch.Generator().manual_seed(6),
                                return_trajectory=True)
    eps = torch.randn(known.shape, generator=torch.Generator().manual_seed(6), dtype=F64)
    expected = dl.q_sample(den.process, known * mask, 20, noise=eps)
    assert torch.allclose(path[0], expected, atol=1e-12)
    assert len(path) == 6  # 5 steps from t0 = 20


def test_ilvr_from_t_start_is_consistent_and_contracts():
    # An image-shaped toy: 2x2 images of 4 independent pixels, exact Gaussian denoiser.
    d = 4
    data = dl.GaussianMixture(torch.tensor([1.0], dtype=F64), torch.zeros(1, d, dtype=F64),
                              (0.3 * torch.eye(d, dtype=F64))[None])
    den_flat = data.denoiser(dl.cosine_schedule(100))

    class Images:  # (B, 1, 2, 2) <-> (B, 4) around the exact denoiser's network
        def __init__(self, net):
            self.net = net

        def __call__(self, x, t, y=None):
            return self.net(x.flatten(1), t, y).reshape(x.shape)

    den = dl.Denoiser(Images(den_flat.net), den_flat.process, predicts=den_flat.predicts)
    x0 = torch.randn(64, 1, 2, 2, generator=torch.Generator().manual_seed(7), dtype=F64) * 0.3**0.5
    low = dl.box_downsample(x0, 2)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(8), dtype=F64)
    starts = [dl.nearest_upsample(low, 2), x0 + 0.5 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(9),
                                                                   dtype=F64)]
    outs = [dl.ilvr_sample(den, low, 2, steps=10, t_start=60, x_T=dl.q_sample(den.process, s, 60, noise=eps),
                           generator=torch.Generator().manual_seed(10)) for s in starts]
    for out in outs:
        assert (dl.box_downsample(out, 2) - low).abs().max().item() < 1e-12
    # Chung et al. 2022, Thm. 1: the same noise, two starts; the reverse steps contract their distance.
    before = (starts[0] - starts[1]).flatten(1).norm(dim=1)
    after = (outs[0] - outs[1]).flatten(1).norm(dim=1)
    assert (after / before).mean().item() < 0.5
