"""sentence-transformers modules that follow the MetaEOL module and change its vectors for retrieval.

``CorpusCenter`` removes the mean vector of a sample of the user's documents (fitted by :func:`fit_center`);
:func:`embed_filter` builds EmbedFilter's data-free projection onto the middle singular band of the LLM's
unembedding matrix as a plain sentence-transformers ``Dense`` module. Both are saved in the model folder.
"""

from metaeol_integrations.postprocessing.center import CorpusCenter, fit_center
from metaeol_integrations.postprocessing.embed_filter import add_embed_filter, embed_filter, unembedding_matrix

__all__ = ["CorpusCenter", "add_embed_filter", "embed_filter", "fit_center", "unembedding_matrix"]
