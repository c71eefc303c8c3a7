"""Shared setup for the model tests (CPU, fp32, deterministic)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    # Tiny matmuls: one thread avoids OpenMP spin-waiting on a shared 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
