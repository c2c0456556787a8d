"""Sharing MetaEOL models: weightless folders that name their base LLM by hub id, model cards, loading by id."""

from __future__ import annotations

from metaeol_integrations.sharing.model_card import CardFacts, MetaEOLModelCardData, render_model_card
from metaeol_integrations.sharing.reference import write_reference_folder

__all__ = ["CardFacts", "MetaEOLModelCardData", "render_model_card", "write_reference_folder"]
