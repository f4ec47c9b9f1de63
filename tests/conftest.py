"""Shared test set-up."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """The tests train tiny models: one thread is as fast, and immune to OpenMP
    spin-waiting when other processes load the CPU (30x slowdowns were seen with two
    threads on two busy cores)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
