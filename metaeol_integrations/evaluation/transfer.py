"""Transfer tasks: a logistic-regression probe on frozen sentence vectors (scikit-learn).

SentEval trains its probe with Adam and early stopping over an L2 grid 1e-5..1e-2. We use scikit-learn's
``LogisticRegression`` (L-BFGS, exact optimum) on standardised features and pick the inverse L2 strength ``C`` from a
log grid by inner cross-validation: same protocol (outer 10-fold, inner model selection, train/test for TREC and
MRPC, dev-based selection for SST-2), a different optimiser and grid. docs/evaluation.md states this deviation.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

C_GRID = np.logspace(-4, 2, 7)
MAX_ITER = 2000


def pair_features(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """SentEval's MRPC features: ``[|u - v|, u * v]``."""
    return np.concatenate([np.abs(first - second), first * second], axis=1)


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> StratifiedKFold:
    """``folds`` stratified folds, fewer when the rarest class has fewer members (small samples of TREC)."""
    counts = np.bincount(labels)
    smallest = int(counts[counts > 0].min())
    return StratifiedKFold(n_splits=max(2, min(folds, smallest)), shuffle=True, random_state=seed)


def _selected_probe(features: np.ndarray, labels: np.ndarray, inner_folds: int, seed: int):
    probe = make_pipeline(
        StandardScaler(),
        LogisticRegressionCV(
            Cs=C_GRID, cv=stratified_folds(labels, inner_folds, seed), max_iter=MAX_ITER, scoring="accuracy",
            l1_ratios=(0.0,), use_legacy_attributes=False,
        ),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(features, labels)
    return probe


def kfold_accuracy(
    features: np.ndarray, labels: np.ndarray, seed: int = 0, folds: int = 10, inner_folds: int = 10
) -> float:
    """Mean test accuracy x100 over ``folds`` stratified folds, C chosen by inner CV on each training part."""
    outer = stratified_folds(labels, folds, seed)
    accuracies = []
    for train, test in outer.split(features, labels):
        probe = _selected_probe(features[train], labels[train], inner_folds, seed)
        accuracies.append(float((probe.predict(features[test]) == labels[test]).mean()))
    return float(np.mean(accuracies) * 100)


def train_test_accuracy(
    train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray, test_labels: np.ndarray,
    seed: int = 0, inner_folds: int = 10,
) -> float:
    """Test accuracy x100 of a probe whose C was chosen by k-fold CV on the training split (TREC, MRPC)."""
    probe = _selected_probe(train_features, train_labels, inner_folds, seed)
    return float((probe.predict(test_features) == test_labels).mean() * 100)


def dev_selected_accuracy(
    train_features: np.ndarray, train_labels: np.ndarray, dev_features: np.ndarray, dev_labels: np.ndarray,
    test_features: np.ndarray, test_labels: np.ndarray,
) -> float:
    """Test accuracy x100 of the probe whose C scored best on the dev split (SST-2)."""
    best, best_accuracy = None, -1.0
    for c in C_GRID:
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=MAX_ITER))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            probe.fit(train_features, train_labels)
        accuracy = float((probe.predict(dev_features) == dev_labels).mean())
        if accuracy > best_accuracy:
            best, best_accuracy = probe, accuracy
    return float((best.predict(test_features) == test_labels).mean() * 100)
