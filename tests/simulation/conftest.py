"""Small simulated worlds shared by the simulation tests (built once per session)."""
from __future__ import annotations

import pytest

from simulation.history import simulate_history
from simulation.world import WorldConfig, generate_world

SMALL = WorldConfig(n_contacts=3_000, n_days=60, seed=11)


@pytest.fixture(scope="session")
def small_world():
    return generate_world(SMALL)


@pytest.fixture(scope="session")
def small_history(small_world):
    return simulate_history(small_world, progress=False)
