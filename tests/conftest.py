"""Shared fixtures. No GPU needed anywhere; GPU tests skip cleanly without one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def synthetic_bundle_path() -> Path:
    """The bundled synthetic test fixture (strait_sim/profiles/synthetic-tiny)."""
    from strait_sim.profile_registry import resolve_profile

    path, _ = resolve_profile("synthetic-tiny")
    return path


@pytest.fixture(scope="session")
def synthetic_bundle(synthetic_bundle_path):
    from strait_sim.profile_bundle import read_bundle_dir

    return read_bundle_dir(synthetic_bundle_path, name="synthetic-tiny")


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


requires_gpu = pytest.mark.skipif(not cuda_available(), reason="needs an NVIDIA GPU")
