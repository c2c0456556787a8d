"""Cost of each prompt method on SmolLM2-135M: sentences/s of every recipe side by side in one run.

One process loads the model once and switches the recipe between measurements (templates, layer, Token
Prepending, Contrastive Prompting are module settings), so every recipe runs on the same weights, threads and
sentences. The recipes are measured in rounds, each round in a fresh seeded order, and each recipe's best
(fastest) round is reported: the machines are noisy and the fastest round is the least disturbed one. Every recipe
is warmed up first (prefix caches filled once, as in any real run).

Run:  .venv/bin/python benchmarks/methods_cost.py --token-prepending 1,7 --contrastive 4,ns,2
      [--data-dir ../shared/data/senteval] [--sentences 64] [--rounds 2] [--threads 2]
Writes benchmarks/results/methods_cost.json and benchmarks/results/methods_cost.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import sample_sts_b_sentences  # noqa: E402  (same seeded STS-B sentence sample)

REPO = Path(__file__).resolve().parents[1]


def recipes(token_prepending: list[int], contrastive: dict) -> dict[str, dict]:
    """Recipe label -> module settings (everything left out is off / the set's own layer)."""
    tp, cp = {"token_prepending": token_prepending}, {"contrastive": contrastive}
    return {
        "MetaEOL": {"templates": "metaeol"},
        "PromptEOL": {"templates": "prompteol"},
        "PCoT": {"templates": "pcot"},
        "KE": {"templates": "ke"},
        "CK": {"templates": "ck"},
        "PromptEOL + TP": {"templates": "prompteol", **tp},
        "KE + CP": {"templates": "ke", **cp},
        "CK + CP": {"templates": "ck", **cp},
        "CK + TP + CP": {"templates": "ck", **tp, **cp},
        "MetaEOL + TP": {"templates": "metaeol", **tp},
        "MetaEOL + CP": {"templates": "metaeol", **cp},
        "MetaEOL + TP + CP": {"templates": "metaeol", **tp, **cp},
    }


def apply(module, settings: dict) -> None:
    module.template_set = settings["templates"]
    module.layer = settings.get("layer")
    module.token_prepending = settings.get("token_prepending")
    module.contrastive = settings.get("contrastive")


def measure(args: argparse.Namespace) -> dict:
    import torch

    import metaeol_integrations

    torch.set_num_threads(args.threads)
    start, exit_ = (int(v) for v in args.token_prepending.split(","))
    layer, mode, alpha = args.contrastive.split(",")
    table = recipes([start, exit_], {"layer": int(layer), "mode": mode, "alpha": float(alpha)})
    sentences = sample_sts_b_sentences(Path(args.data_dir), args.sentences, args.seed)
    model = metaeol_integrations.load("metaeol-smollm2-135m", device="cpu")
    module = model[0]
    seconds: dict[str, list[float]] = {label: [] for label in table}
    for label, settings in table.items():  # warm-up: fills each template set's prefix cache once
        apply(module, settings)
        model.encode(sentences[:2], batch_size=args.batch_size)
    order = list(table)
    for round_ in range(args.rounds):
        random.Random(args.seed + round_).shuffle(order)
        for label in order:
            apply(module, table[label])
            began = time.perf_counter()
            model.encode(sentences, batch_size=args.batch_size)
            seconds[label].append(time.perf_counter() - began)
            print(f"round {round_ + 1}: {label}: {seconds[label][-1]:.1f} s", file=sys.stderr, flush=True)
    base = len(sentences) / min(seconds["MetaEOL"])
    rows = {}
    for label, settings in table.items():
        rate = len(sentences) / min(seconds[label])
        rows[label] = {"settings": settings, "seconds": seconds[label], "sentences_per_s": rate,
                       "speed_vs_metaeol": rate / base}
    return {
        "model": "metaeol-smollm2-135m (float32)",
        "sentences": len(sentences), "seed": args.seed, "rounds": args.rounds, "threads": args.threads,
        "batch_size": args.batch_size, "machine": platform.platform(), "processor": platform.processor(),
        "recipes": rows,
    }


def markdown(result: dict) -> str:
    lines = [
        f"# Cost of each method: {result['model']}",
        "",
        f"{result['sentences']} seeded STS-B test sentences (seed {result['seed']}), {result['threads']} threads, "
        f"batch size {result['batch_size']}, best of {result['rounds']} rounds in shuffled order, one process.",
        "",
        "| recipe | sentences/s | speed vs MetaEOL |",
        "|---|---:|---:|",
    ]
    for label, row in result["recipes"].items():
        lines.append(f"| {label} | {row['sentences_per_s']:.2f} | {row['speed_vs_metaeol']:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token-prepending", required=True, help="START,EXIT (as chosen by `metaeol tune tp`)")
    parser.add_argument("--contrastive", required=True, help="LAYER,ns,ALPHA (as chosen by `metaeol tune cp`)")
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "senteval"))
    parser.add_argument("--sentences", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args()
    result = measure(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "methods_cost.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    (out / "methods_cost.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


if __name__ == "__main__":
    main()
