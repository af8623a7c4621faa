import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_threads():
    # Tests draw from explicit generators; the global seed only guards against accidental use.
    torch.manual_seed(0)
    yield


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)
