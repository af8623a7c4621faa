"""Class conditioning, classifier and classifier-free guidance, on the labelled Gaussian-mixture toy."""

import numpy as np
import pytest
import torch

import diffusion_lab as dl


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def toy():
    # The labelled toy of the guidance chapter: three overlapping classes.
    return dl.GaussianMixture.ring(n_components=3, radius=1.0, std=0.5)


def test_labelled_sampling_and_per_class_oracle(toy):
    x, y = toy.sample_labelled(3000, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3000, 2) and y.shape == (3000,) and y.dtype == torch.long
    torch.testing.assert_close(x, toy.sample(3000, generator=torch.Generator().manual_seed(0)))
    for k in range(3):
        assert (x[y == k].double().mean(0) - toy.means[k]).abs().max() < 4 * 0.5 / (1000**0.5)
    x_t = torch.randn(50, 2, dtype=torch.float64)
    y = torch.randint(0, 3, (50,))
    level = (0.4**0.5, 0.6**0.5)  # ᾱ = 0.4
    cond_x0, cond_eps = toy.posterior_means(x_t, *level, y)
    for k in range(3):
        x0_k, eps_k = toy.component(k).posterior_means(x_t[y == k], *level)
        torch.testing.assert_close(cond_eps[y == k], eps_k)
        torch.testing.assert_close(cond_x0[y == k], x0_k)
    # The null label K asks for the whole mixture.
    torch.testing.assert_close(toy.posterior_means(x_t, *level, torch.full((50,), 3))[1],
                               toy.posterior_means(x_t, *level)[1])
    # The labelled oracle denoiser on a schedule: the same per-class answers at every step.
    s = dl.cosine_schedule(100)
    t = torch.randint(1, 101, (50,), generator=torch.Generator().manual_seed(4))
    prediction = toy.denoiser(s, labels=y).predict(x_t, t)
    for k in range(3):
        torch.testing.assert_close(prediction.eps[y == k], toy.component(k).denoiser(s).eps(x_t[y == k], t[y == k]))
    # p(y | x_t) sums to one and is the Bayes posterior π_k N_k / Σ_j π_j N_j.
    log_post = toy.class_log_posterior(x_t, *level)
    torch.testing.assert_close(log_post.exp().sum(1), torch.ones(50, dtype=torch.float64))
    log_joint = torch.stack([toy.component(k).log_prob(x_t, *level) for k in range(3)], 1) + toy.weights.log()
    torch.testing.assert_close(log_post, torch.log_softmax(log_joint, 1))
    with pytest.raises(ValueError, match="component index in 0..2"):
        toy.component(3)


def test_classifier_guidance_with_exact_models_is_bayes_rule(toy):
    """∇ log q_t(x|y) = ∇ log q_t(x) + ∇ log q_t(y|x): with the exact classifier and scale 1,
    the guided unconditional ε̂ equals the exact conditional ε̂."""
    s = dl.cosine_schedule(100)

    def exact_classifier(x, t):
        return toy.class_log_posterior(x, *s.scale_std(t))

    x_t = torch.randn(64, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t = torch.randint(1, 101, (64,), generator=torch.Generator().manual_seed(2))
    y = torch.randint(0, 3, (64,), generator=torch.Generator().manual_seed(3))
    guided = dl.ClassifierGuidance(toy.denoiser(s), exact_classifier, y, scale=1.0)
    exact = toy.denoiser(s, labels=y).predict(x_t, t)
    prediction = guided.predict(x_t, t)
    torch.testing.assert_close(prediction.eps, exact.eps)
    torch.testing.assert_close(prediction.x0, exact.x0)
    assert not x_t.requires_grad
    # Scale 0 is the unconditional denoiser; the scale must be >= 0.
    torch.testing.assert_close(dl.ClassifierGuidance(toy.denoiser(s), exact_classifier, y, scale=0.0).eps(x_t, t),
                               toy.denoiser(s).eps(x_t, t))
    with pytest.raises(ValueError, match="scale must be a finite number >= 0, got -1.0"):
        dl.ClassifierGuidance(toy.denoiser(s), exact_classifier, y, scale=-1.0)


def test_classifier_free_guidance_formula(toy):
    s = dl.cosine_schedule(100)
    x_t, t = torch.randn(20, 2, dtype=torch.float64), torch.full((20,), 30)
    cond, uncond = toy.denoiser(s, labels=2).predict(x_t, t), toy.denoiser(s).predict(x_t, t)
    torch.testing.assert_close(toy.denoiser(s, labels=2, guidance=0.0).eps(x_t, t), cond.eps)
    guided = toy.denoiser(s).replace(labels=2, guidance=3.0).predict(x_t, t)
    # Eq. 6 with the (1 + w) convention, on the network outputs, so on x̂₀ and ε̂ alike.
    torch.testing.assert_close(guided.eps, 4.0 * cond.eps - 3.0 * uncond.eps)
    torch.testing.assert_close(guided.x0, 4.0 * cond.x0 - 3.0 * uncond.x0)
    # The same with a trained-style network: one batched call, the null label K for the unconditional half.
    torch.manual_seed(0)
    net = dl.TimeMLP(hidden=16, n_blocks=1, num_classes=3)
    x = x_t.float()
    with torch.no_grad():
        expected = 4.0 * net(x, t, torch.full((20,), 2)) - 3.0 * net(x, t, torch.full((20,), 3))
        torch.testing.assert_close(dl.Denoiser(net, s, labels=2, guidance=3.0).eps(x, t), expected)
    with pytest.raises(ValueError, match="guidance must be a finite number >= 0, got -1.0"):
        toy.denoiser(s, labels=2, guidance=-1.0)
    with pytest.raises(ValueError, match="labels and guidance need a class-conditional network"):
        dl.Denoiser(dl.TimeMLP(hidden=8, n_blocks=1), s, labels=2)


def test_conditional_time_mlp_and_unchanged_unconditional_one():
    torch.manual_seed(0)
    plain = dl.TimeMLP(hidden=16, n_blocks=1)
    torch.manual_seed(0)
    cond = dl.TimeMLP(hidden=16, n_blocks=1, num_classes=3)
    assert cond.null_label == 3 and plain.null_label is None
    for name, p in plain.state_dict().items():  # same initialisation of the shared layers
        torch.testing.assert_close(cond.state_dict()[name], p)
    x, t = torch.randn(5, 2), torch.randint(1, 50, (5,))
    assert cond(x, t, torch.tensor([0, 1, 2, 3, 0])).shape == (5, 2)
    torch.testing.assert_close(cond(x, t), cond(x, t, torch.full((5,), 3)))  # None is the null label
    with pytest.raises(ValueError, match="y holds 4; labels must lie in 0..2, or 3 for the null label"):
        cond(x, t, torch.tensor([0, 1, 2, 4, 0]))
    with pytest.raises(ValueError, match="unconditional"):
        plain(x, t, torch.zeros(5, dtype=torch.long))


def test_train_with_labels_and_label_dropout_checks():
    s = dl.cosine_schedule(20)
    data, y = torch.randn(100, 2), torch.randint(0, 3, (100,))
    plain = dl.Denoiser(dl.TimeMLP(hidden=8, n_blocks=1), s)
    conditional = dl.Denoiser(dl.TimeMLP(hidden=8, n_blocks=1, num_classes=3), s)
    with pytest.raises(ValueError, match=r"labels need a class-conditional network \(net.num_classes is None\)"):
        dl.train_diffusion(plain, data, steps=1, labels=y, label_dropout=0.1, progress=False)
    with pytest.raises(ValueError, match="label_dropout needs labels"):
        dl.train_diffusion(plain, data, steps=1, label_dropout=0.1, progress=False)
    with pytest.raises(ValueError, match=r"labels must have shape \(100,\) to match the batch, got \(5,\)"):
        dl.train_diffusion(conditional, data, steps=1, labels=y[:5], progress=False)
    with pytest.raises(TypeError, match="labels must hold integer class labels"):
        dl.train_diffusion(conditional, data, steps=1, labels=y.float(), progress=False)
    with pytest.raises(ValueError, match="labels holds 3; labels must lie in 0..2$"):  # the null label is not a class
        dl.train_diffusion(conditional, data, steps=1, labels=torch.full((100,), 3), progress=False)


def test_noisy_classifier_learns_the_bayes_posterior(toy):
    """A classifier trained on noisy inputs approaches the exact p(y | x_t): its accuracy on fresh
    noisy data is within 3 points of the Bayes classifier's at every noise level tested."""
    s = dl.cosine_schedule(100)
    x, y = toy.sample_labelled(20_000, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    clf = dl.train_classifier(dl.NoisyClassifier(num_classes=3), x, y, s, steps=600, seed=0,
                              progress=False).ema_model
    x_test, y_test = toy.sample_labelled(4000, generator=torch.Generator().manual_seed(1))
    for step in (1, 30, 60):
        x_t = dl.q_sample(s, x_test, step, generator=torch.Generator().manual_seed(step))
        t = torch.full((4000,), step)
        learned = (clf(x_t, t).argmax(1) == y_test).double().mean()
        bayes = (toy.class_log_posterior(x_t, *s.scale_std(t)).argmax(1) == y_test).double().mean()
        assert learned > bayes - 0.03, (step, float(learned), float(bayes))


def _binomial_se(p: float, n: int) -> float:
    return max(float(np.sqrt(p * (1 - p) / n)), 0.5 / n)


def test_classifier_free_guidance_trades_diversity_for_accuracy():
    """Issue bar: on the labelled toy, the class accuracy of CFG samples (judged by a separately
    trained classifier) rises with w and the within-class diversity falls.

    The toy's classes overlap (Bayes accuracy 0.82), so accuracy has room to rise. The schedule is
    linear: on the cosine schedule (ᾱ_T = 2e-7 at T = 100) DDIM's first step multiplies the
    network's ε error by √(ᾱ_96 / ᾱ_100) ≈ 130 and the samples explode (that was the earlier failure:
    diversity *grew* with w). Common starting noise across w; 1,000 samples per class, so the
    accuracy's standard error is below 0.007; "monotone within noise" allows a drop of 2 standard
    errors between neighbours and asks for a total rise of 5."""
    toy = dl.GaussianMixture.ring(n_components=3, radius=1.0, std=0.7)
    s = dl.linear_schedule(100)
    x, y = toy.sample_labelled(20_000, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    denoiser = dl.train_diffusion(dl.Denoiser(dl.TimeMLP(hidden=64, n_blocks=3, num_classes=3), s), x, steps=800,
                                  lr=3e-3, seed=0, labels=y, label_dropout=0.2, progress=False).denoiser
    torch.manual_seed(1)
    judge_net = dl.train_classifier(dl.NoisyClassifier(num_classes=3), x, y, s, steps=400, max_t=1, seed=1,
                                    progress=False).ema_model

    def judge(points):
        return judge_net(points, torch.ones(points.shape[0], dtype=torch.long))

    n = 3 * 1000
    out = dl.guidance_tradeoff(lambda k, w: denoiser.replace(labels=k, guidance=w), judge, [0.0, 0.5, 1.0, 2.0, 4.0],
                               num_classes=3, n_per_class=1000, steps=50, generator=torch.Generator().manual_seed(5))
    acc, div = out["accuracy"], out["diversity"]
    print("accuracy", np.round(acc, 3), "diversity", np.round(div, 3))
    se = [_binomial_se(a, n) for a in acc]
    for i in range(len(acc) - 1):
        assert acc[i + 1] > acc[i] - 2 * np.hypot(se[i], se[i + 1]), (acc, se)
    assert acc[-1] - acc[0] > 5 * np.hypot(se[0], se[-1]), acc
    # Diversity: mean pairwise distance of 1,000 points per class (standard error about 0.01).
    assert np.all(np.diff(div) < -0.03), div
    # w = 0 is the conditional model: its accuracy is near the judge's accuracy on true class samples.
    x_test, y_test = toy.sample_labelled(n, generator=torch.Generator().manual_seed(9))
    reference = float((judge(x_test).argmax(1) == y_test).double().mean())
    assert abs(acc[0] - reference) < 0.04, (acc[0], reference)
