"""Which Linear layers the int8 mode quantizes: each variant's STS-B **dev** Spearman and speed, against float32.

For PromptEOL and MetaEOL on SmolLM2-135M, every variant (a set of Linear layers kept in float32) is scored on the
seeded STS-B dev pairs that `metaeol tune` uses, and timed on seeded STS-B test sentences side by side with
float32 in one process (best of --rounds, in shuffled order). Test STS pairs are never scored here: the chosen
variant is reported on test by `metaeol eval sts --quantize int8`.

Run:  .venv/bin/python benchmarks/int8_variants.py [--dev-limit 500] [--sentences 64] [--rounds 2]
Writes benchmarks/results/int8_variants.json and .md. Each variant has its own embedding cache folder under
~/.cache/metaeol-integrations/int8-variants/, so a re-run resumes.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import sample_sts_b_sentences  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# Variant label -> Linear attribute names kept in float32 (None: float32 everywhere, the exact baseline).
VARIANTS: dict[str, tuple[str, ...] | None] = {
    "float32": None,
    "all Linear": (),
    "all but down_proj": ("down_proj",),
    "all but down_proj, o_proj": ("down_proj", "o_proj"),
    "MLP gate/up only": ("q_proj", "k_proj", "v_proj", "o_proj", "down_proj"),
}


def build(templates: str, skip: tuple[str, ...] | None):
    import metaeol_integrations

    model = metaeol_integrations.load("metaeol-smollm2-135m", templates=templates, device="cpu",
                                      model_kwargs={"dtype": "float32"})
    if skip is not None:
        # The module's own quantize="int8" is the chosen variant; the candidates are applied directly.
        model[0].quantize_weights(skip=skip)
    return model


def dev_score(model, label: str, templates: str, args: argparse.Namespace) -> float:
    from metaeol_integrations.evaluation.encoders import MetaEOLEncoder
    from metaeol_integrations.evaluation.evaluator import EvalConfig, Evaluator, View
    from metaeol_integrations.evaluation.sweeps import TUNING_TASK

    slug = f"{templates}-" + "".join(c if c.isalnum() else "-" for c in label)
    cache = Path(args.cache_dir).expanduser() / slug
    config = EvalConfig(data_dir=args.data_dir, sts_limit=args.dev_limit, seed=args.seed, cache_dir=cache,
                        bootstrap_resamples=0, show_progress=False)
    return Evaluator(MetaEOLEncoder(model, slug), config).sts_scores(TUNING_TASK, [View()])[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "senteval"))
    parser.add_argument("--dev-limit", type=int, default=500)
    parser.add_argument("--sentences", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--templates", default="prompteol,metaeol")
    parser.add_argument("--cache-dir", default="~/.cache/metaeol-integrations/int8-variants")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    sentences = sample_sts_b_sentences(Path(args.data_dir), args.sentences, args.seed)
    result = {"model": "metaeol-smollm2-135m", "dev_task": "STSBenchmark-dev", "dev_pairs": args.dev_limit,
              "seed": args.seed, "sentences_timed": len(sentences), "threads": args.threads, "rounds": args.rounds,
              "templates": {}}
    for templates in args.templates.split(","):
        models = {label: build(templates, skip) for label, skip in VARIANTS.items()}
        rows = {label: {"kept_float32": None if skip is None else list(skip)} for label, skip in VARIANTS.items()}
        for label, model in models.items():
            rows[label]["dev_spearman"] = dev_score(model, label, templates, args)
            print(f"{templates} {label}: dev {rows[label]['dev_spearman']:.2f}", file=sys.stderr, flush=True)
            model.encode(sentences[:2])  # warm-up: the prefix cache of this variant
        seconds = {label: [] for label in models}
        order = list(models)
        for round_ in range(args.rounds):
            random.Random(args.seed + round_).shuffle(order)
            for label in order:
                began = time.perf_counter()
                models[label].encode(sentences, batch_size=16)
                seconds[label].append(time.perf_counter() - began)
        base = min(seconds["float32"])
        for label in models:
            rows[label].update(seconds=seconds[label], sentences_per_s=len(sentences) / min(seconds[label]),
                               speed_vs_float32=base / min(seconds[label]),
                               dev_change=rows[label]["dev_spearman"] - rows["float32"]["dev_spearman"])
        result["templates"][templates] = rows
        del models

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "int8_variants.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    lines = [f"# int8 variants on {result['model']}: STS-B dev ({args.dev_limit} seeded pairs) and speed", "",
             f"Speed: {len(sentences)} seeded STS-B test sentences, {args.threads} threads, best of {args.rounds} "
             "rounds, all variants in one process.", "",
             "| templates | variant | float32 kept | dev Spearman | change | sentences/s | speed vs float32 |",
             "|---|---|---|---:|---:|---:|---:|"]
    for templates, rows in result["templates"].items():
        for label, row in rows.items():
            kept = "everything" if row["kept_float32"] is None else (", ".join(row["kept_float32"]) or "nothing")
            lines.append(f"| {templates} | {label} | {kept} | {row['dev_spearman']:.2f} | {row['dev_change']:+.2f} "
                         f"| {row['sentences_per_s']:.2f} | {row['speed_vs_float32']:.2f}x |")
    (out / "int8_variants.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
