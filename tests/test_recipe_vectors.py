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
# order. A change of method moves vectors by far more.
TOLERANCE = 1e-5
# int8 quantizes every activation: where another CPU's float32 kernels leave an activation on the other side of a
# rounding boundary, that text's vector moves by a few percent (docs/performance.md: up to 5% of its norm on SmolLM2
# between batch shapes; here two of the four texts by 1e-2 and 2e-2 on an AVX-512 machine, the other two within
# 1e-7). A change of the int8 method (layers, scales) moves every text, so at least half the texts must still agree
# closely. The int8 arithmetic itself is checked on this machine against an independent computation in
# tests/test_quantization.py.
INT8_CLOSE, INT8_FLIPPED = 1e-3, 5e-2


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_gives_the_recorded_vectors(recorded, name):
    vectors, want = recipe_vectors(name), recorded[name]
    assert vectors.shape == want.shape
    error = np.abs(vectors - want).max(axis=1) / np.linalg.norm(want, axis=1)
    if name.endswith("int8"):
        assert (error <= INT8_CLOSE).mean() >= 0.5 and error.max() <= INT8_FLIPPED, error
    else:
        assert error.max() <= TOLERANCE, error
