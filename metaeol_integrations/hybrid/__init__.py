"""Hybrid retrieval: a dense ranking fused with BM25's, as the harness measures it and the adapters build it."""

from __future__ import annotations

from metaeol_integrations.hybrid.fusion import FUSION_METHODS, Fusion, fuse_lists, fuse_ranked

__all__ = ["FUSION_METHODS", "Fusion", "fuse_lists", "fuse_ranked"]
