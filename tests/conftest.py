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


@pytest.fixture(scope="module")
def one_thread():
    # Many tiny tensor ops (the oracle's) run much slower with 2 intra-op threads on the 2-core target.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
