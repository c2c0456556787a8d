"""Vectors of a fixed set of recipes equal those recorded before the core reshape (tests/recipe_vectors.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.recipe_vectors import RECIPES, VECTORS_FILE, recipe_vectors

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recorded():
    with np.load(VECTORS_FILE) as data:
        return {name: data[name] for name in data.files}


def test_every_recipe_was_recorded(recorded):
    assert sorted(recorded) == sorted(RECIPES)


# Relative to each vector's norm: the recording may be checked on another CPU, whose float32 kernels sum in another
# order (int8 may also round an activation the other way). A change of method moves vectors by far more.
RELATIVE_TOLERANCE = {"prompteol-int8": 1e-3}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_gives_the_recorded_vectors(recorded, name):
    vectors, want = recipe_vectors(name), recorded[name]
    assert vectors.shape == want.shape
    error = np.abs(vectors - want).max(axis=1) / np.linalg.norm(want, axis=1)
    assert error.max() <= RELATIVE_TOLERANCE.get(name, 1e-5), error
