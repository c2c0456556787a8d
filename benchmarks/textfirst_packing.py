"""Text-first MetaEOL with its first stage (each text's shared part) packed against padded, side by side.

One process, one model (``metaeol-textfirst`` on the offline SmolLM2), the same seeded SciFact abstracts; rounds
alternate ``module.packing`` on (stage 1 packed, the default) and off (stage 1 padded to the longest text in the
call; stage 2 is the same in both). Beside documents/s: the token positions the LLM computes per document (counted at
its input embedding, padding included) and the largest difference between the two vector sets.

Run:  .venv/bin/python benchmarks/textfirst_packing.py [--documents 16] [--rounds 3] [--dtype float32]
Writes benchmarks/results/textfirst_packing.json and .md.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "textfirst_packing"))
    args = parser.parse_args()
    import numpy as np
    import torch

    import metaeol_integrations
    from metaeol_integrations.core.precision import CPU_MATRIX_FLAGS, cpu_flags
    from metaeol_integrations.evaluation.beir import read_beir

    torch.set_num_threads(args.threads)
    documents = random.Random(0).sample(read_beir("scifact").doc_texts, args.documents + 2)
    warmup, documents = documents[:2], documents[2:]
    model = metaeol_integrations.load("metaeol-smollm2-135m", templates="metaeol-textfirst", device="cpu",
                                      model_kwargs={"dtype": args.dtype})
    embeddings = model[0].auto_model.get_input_embeddings()
    counted: list[int] = []
    embeddings.register_forward_hook(lambda _m, inputs, _out: counted.append(int(inputs[0].numel())))
    model.encode(warmup)
    best: dict[str, float] = {}
    tokens: dict[str, float] = {}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for label, packing in (("stage 1 packed", True), ("stage 1 padded", False)):
            model[0].packing = packing
            counted.clear()
            start = time.perf_counter()
            vectors[label] = model.encode(documents, batch_size=16)
            rate = len(documents) / (time.perf_counter() - start)
            best[label] = max(best.get(label, 0.0), rate)
            tokens[label] = sum(counted) / len(documents)
    difference = float(np.abs(vectors["stage 1 packed"] - vectors["stage 1 padded"]).max())
    report = {"date": time.strftime("%Y-%m-%d"), "documents": len(documents), "rounds": args.rounds,
              "dtype": model[0].precision.describe(), "cpu_flags": list(cpu_flags(CPU_MATRIX_FLAGS)),
              "documents_per_s": best, "positions_per_document": tokens, "max_abs_difference": difference}
    Path(f"{args.out}.json").write_text(json.dumps(report, indent=2))
    lines = [f"# Text-first MetaEOL, first stage packed vs padded ({report['date']})", "",
             f"{len(documents)} SciFact abstracts, SmolLM2 `metaeol-textfirst`, {report['dtype']}, best of "
             f"{args.rounds} alternating rounds, batch 16; CPU flags {', '.join(report['cpu_flags']) or 'none'}; "
             f"max |difference| of the vectors {difference:.1e}.", "",
             "| first stage | documents/s | vs padded | LLM positions per document |", "|---|---|---|---|"]
    for label in best:
        lines.append(f"| {label} | {best[label]:.2f} | {best[label] / best['stage 1 padded']:.2f}x | "
                     f"{tokens[label]:.0f} |")
    Path(f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
