"""Embed corpora on Ray Data with an actor pool of MetaEOL models (extra ``ray``)."""

from metaeol_integrations.distributed.ray_embed import EmbedSummary, RayEmbedConfig, embed_dataset, embed_files

__all__ = ["EmbedSummary", "RayEmbedConfig", "embed_dataset", "embed_files"]
