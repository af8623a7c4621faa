import pytest
import torch

import diffusion_lab as dl


@pytest.fixture(autouse=True)
def _seed_and_threads():
    # Tests draw from explicit generators; the global seed only guards against accidental use.
    torch.manual_seed(0)
    yield


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


@pytest.fixture(scope="module")
def one_thread():
    # Many tiny tensor ops (the oracle's) run much slower with 2 intra-op threads on the 2-core target.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def gmm():
    """The book's unequal three-component 2D mixture (chapters 5 and 6), with its exact score (immutable:
    one object for the session, so helpers can cache per mixture)."""
    return dl.GaussianMixture(
        weights=torch.tensor([0.2, 0.5, 0.3]),
        means=torch.tensor([[-1.5, 0.0], [1.0, 1.0], [0.5, -1.5]]),
        covs=torch.tensor([[[0.1, 0.03], [0.03, 0.2]], [[0.05, 0.0], [0.0, 0.05]], [[0.3, -0.1], [-0.1, 0.1]]]),
    )
