"""Settings shared by the test suite and the doctests of the package."""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def single_torch_thread():
    """The suite's nets are tiny: one intra-op thread is faster and never
    oversubscribes a small CI machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
