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


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_gives_the_recorded_vectors(recorded, name):
    vectors = recipe_vectors(name)
    assert vectors.shape == recorded[name].shape
    np.testing.assert_allclose(vectors, recorded[name], rtol=0, atol=2e-5)
