"""Quality against cost for every configuration the package offers on SmolLM2-135M, with the Pareto front marked.

Quality: the 7-task English STS average of each configuration's `metaeol eval` run in docs/results (the same 500
seeded pairs per task for every row; a configuration without a run is listed with its speed only). Cost:
sentences/s of every configuration measured side by side in this run, in one process, on the same seeded STS-B
test sentences (best of --rounds rounds, each in a fresh shuffled order; every configuration warmed up first so
its prefix caches exist, as in any long run). Token Prepending and Contrastive Prompting use the settings chosen on
STS-B dev (docs/results/*-tune-*.json).

With --model gemma3-270m, the configurations run on Gemma3 (its own tuned settings; 250 pairs per task).

Rows marked [auto] are the same configurations in ``dtype="auto"`` (bfloat16 blocks where this CPU runs them faster),
scored with the float32 row's STS run. The CPU's matrix-unit flags and auto's choice are recorded with the result.

Run:  .venv/bin/python benchmarks/frontier.py [--model smollm2-135m|gemma3-270m] [--sentences 64] [--rounds 2]
Writes benchmarks/results/frontier.json, frontier.md and frontier.png (frontier-gemma3-270m.* for Gemma3).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import sample_sts_b_sentences  # noqa: E402  (the same seeded STS-B sentence sample)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"
STS = ("STS12", "STS13", "STS14", "STS15", "STS16", "STSBenchmark", "SICKRelatedness")


@dataclass(frozen=True)
class Configuration:
    """One point: how to build it (``model``: which instance, ``settings``: module settings) and its STS run."""

    label: str
    run: str  # file stem in docs/results (without -all.json / -sts.json)
    model: str = "float32"  # "float32", "auto" (dtype="auto": bfloat16 blocks where faster), "int8", "mean-pooling"
    settings: dict = field(default_factory=dict)


# Models with measured rows: name in docs/results -> (preset, STS pairs per task of its rows).
MODELS = {"smollm2-135m": ("metaeol-smollm2-135m", 500), "gemma3-270m": ("metaeol-gemma3-270m", 250)}


def tuned_methods(results: Path, name: str) -> tuple[list[int], dict]:
    """Token Prepending and Contrastive Prompting settings chosen on STS-B dev for the model."""
    tp = json.loads((results / f"{name}-PromptEOL-tune-tp.json").read_text())["best"]["token_prepending"]
    cp = json.loads((results / f"{name}-PromptEOL-CP-alphas-tune-cp.json").read_text())["best"]["contrastive"]
    return tp, cp


def configurations(results: Path, name: str = "smollm2-135m") -> list[Configuration]:
    from metaeol_integrations.presets import PRESETS

    tp, cp = tuned_methods(results, name)
    tp_label, cp_label = "TP {},{}".format(*tp), "CP {},{},{:g}".format(cp["layer"], cp["mode"], cp["alpha"])
    if name == "gemma3-270m":  # the rows run on Gemma3: SmolLM2's best three and the dev winner (docs/methods.md)
        return [
            Configuration("mean pooling", f"{name}-mean-pooling", "mean-pooling"),
            Configuration("PromptEOL", f"{name}-PromptEOL-last-layer", settings={"templates": "prompteol"}),
            Configuration("MetaEOL", f"{name}-MetaEOL-last-layer", settings={"templates": "metaeol"}),
            Configuration("KE", f"{name}-KE", settings={"templates": "ke"}),
            Configuration(f"KE + {cp_label}", f"{name}-KE-CP", settings={"templates": "ke", "contrastive": cp}),
            Configuration(f"MetaEOL + {tp_label}", f"{name}-MetaEOL-TP",
                          settings={"templates": "metaeol", "token_prepending": tp}),
            Configuration(f"PromptEOL + {tp_label} = metaeol-plus-gemma3-270m", f"{name}-PromptEOL-TP",
                          settings=PRESETS["metaeol-plus-gemma3-270m"].recipe.changed_options()),
        ]
    points = [
        Configuration("mean pooling", "smollm2-135m-mean-pooling", "mean-pooling"),
        Configuration("PromptEOL", "smollm2-135m-PromptEOL-last-layer", settings={"templates": "prompteol"}),
        Configuration("MetaEOL", "smollm2-135m-MetaEOL-last-layer", settings={"templates": "metaeol"}),
        Configuration("MetaEOL, layer 28 (tuned on dev) = metaeol-plus-smollm2-135m",
                      "smollm2-135m-MetaEOL-tuned-layer-28", settings=PRESETS["metaeol-plus-smollm2-135m"].recipe.changed_options()),
        Configuration("PCoT", "smollm2-135m-PCoT", settings={"templates": "pcot"}),
        Configuration("KE", "smollm2-135m-KE", settings={"templates": "ke"}),
        Configuration("CK", "smollm2-135m-CK", settings={"templates": "ck"}),
        Configuration(f"PromptEOL + {tp_label}", "smollm2-135m-PromptEOL-TP",
                      settings={"templates": "prompteol", "token_prepending": tp}),
        Configuration(f"KE + {cp_label}", "smollm2-135m-KE-CP", settings={"templates": "ke", "contrastive": cp}),
        Configuration(f"CK + {cp_label}", "smollm2-135m-CK-CP", settings={"templates": "ck", "contrastive": cp}),
        Configuration(f"MetaEOL + {tp_label}", "smollm2-135m-MetaEOL-TP",
                      settings={"templates": "metaeol", "token_prepending": tp}),
        Configuration(f"MetaEOL + {cp_label}", "smollm2-135m-MetaEOL-CP",
                      settings={"templates": "metaeol", "contrastive": cp}),
        Configuration(f"MetaEOL + {tp_label} + {cp_label}", "smollm2-135m-MetaEOL-TP-CP",
                      settings={"templates": "metaeol", "token_prepending": tp, "contrastive": cp}),
        Configuration("PromptEOL int8", "smollm2-135m-PromptEOL-int8", "int8", {"templates": "prompteol"}),
        Configuration("MetaEOL int8", "smollm2-135m-MetaEOL-int8", "int8", {"templates": "metaeol"}),
    ]
    # Text-first MetaEOL (issue 23; scripts/reproduce_textfirst.sh): last layer, and the layer tuned on dev.
    for templates, stem in (("metaeol-textfirst", "MetaEOL text-first"),
                            ("metaeol-textfirst-short", "MetaEOL text-first short")):
        run = f"smollm2-135m-{stem.replace(' ', '-')}"
        points.append(Configuration(stem, f"{run}-last-layer", settings={"templates": templates}))
        tune = results / f"{run}-tune-layer.json"
        if tune.is_file():
            layer = json.loads(tune.read_text())["best_layer"]
            points.append(Configuration(f"{stem}, layer {layer} (tuned on dev)", f"{run}-tuned-layer-{layer}",
                                        settings={"templates": templates, "layer": layer}))
    return points


def with_auto_points(points: list[Configuration]) -> list[Configuration]:
    """The float32 points a user runs most, again in ``dtype="auto"``: the same run (their STS score is the float32
    row's; benchmarks/results/precision_quality.md measures auto against float32 on STS-B dev)."""
    chosen = ("PromptEOL", "MetaEOL", "KE")
    extra = [Configuration(f"{point.label} [auto]", point.run, "auto", point.settings) for point in points
             if point.model == "float32" and (point.label in chosen or "= metaeol-plus" in point.label)]
    return points + extra


def sts_average(results: Path, run: str) -> float | None:
    """The 7-task STS average of a run, or None when it has not been run (or lacks a task)."""
    for suffix in ("-all.json", "-sts.json"):
        path = results / f"{run}{suffix}"
        if path.is_file():
            scores = {r["task"]: r["score"] for r in json.loads(path.read_text())["results"] if r["kind"] == "sts"}
            if all(task in scores for task in STS):
                return sum(scores[task] for task in STS) / len(STS)
    return None


def measure(points: list[Configuration], sentences: list[str], rounds: int, batch_size: int, seed: int,
            preset: str = "metaeol-smollm2-135m") -> dict:
    """Best-of-rounds seconds for every configuration, all in this process."""
    import metaeol_integrations
    from metaeol_integrations.evaluation.encoders import mean_pooling_model
    from metaeol_integrations import Recipe

    models = {"float32": metaeol_integrations.load(preset, device="cpu", model_kwargs={"dtype": "float32"})}
    if any(point.model == "auto" for point in points):
        models["auto"] = metaeol_integrations.load(preset, device="cpu", model_kwargs={"dtype": "auto"})
    if any(point.model == "int8" for point in points):
        models["int8"] = metaeol_integrations.load(preset, device="cpu", quantize="int8")
    models["mean-pooling"] = mean_pooling_model(models["float32"][0].auto_model.name_or_path, device="cpu")

    def run(point: Configuration, texts: list[str]) -> None:
        model = models[point.model]
        if point.model != "mean-pooling":
            # A fresh recipe: nothing left from the last point (the int8 model stays int8).
            model[0].recipe = Recipe.from_options(point.settings, quantize=model[0].quantize)
        model.encode(texts, batch_size=batch_size)

    for point in points:  # warm-up: each configuration's prefix caches, as in any long run
        run(point, sentences[:2])
    seconds: dict[str, list[float]] = {point.label: [] for point in points}
    order = list(points)
    for round_ in range(rounds):
        random.Random(seed + round_).shuffle(order)
        for point in order:
            began = time.perf_counter()
            run(point, sentences)
            seconds[point.label].append(time.perf_counter() - began)
            print(f"round {round_ + 1}: {point.label}: {seconds[point.label][-1]:.1f} s", file=sys.stderr, flush=True)
    return seconds


def pareto(rows: list[dict]) -> None:
    """Mark rows that no other row beats on both quality and speed (rows without a quality are never marked)."""
    scored = [row for row in rows if row["sts_average"] is not None]
    for row in rows:
        row["pareto"] = row in scored and not any(
            other["sts_average"] >= row["sts_average"] and other["sentences_per_s"] >= row["sentences_per_s"]
            and (other["sts_average"] > row["sts_average"] or other["sentences_per_s"] > row["sentences_per_s"])
            for other in scored
        )


def plot(rows: list[dict], path: Path, title: str, pairs: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [row for row in rows if row["sts_average"] is not None]
    figure, axes = plt.subplots(figsize=(9, 6))
    for row in scored:
        marker, colour = ("o", "tab:red") if row["pareto"] else ("o", "tab:gray")
        axes.scatter(row["sentences_per_s"], row["sts_average"], marker=marker, color=colour, zorder=3)
        axes.annotate(row["label"], (row["sentences_per_s"], row["sts_average"]), fontsize=7,
                      xytext=(4, 3), textcoords="offset points")
    front = sorted((row for row in scored if row["pareto"]), key=lambda row: row["sentences_per_s"])
    axes.plot([r["sentences_per_s"] for r in front], [r["sts_average"] for r in front], color="tab:red", lw=1)
    axes.set_xscale("log")
    axes.set_xlabel("sentences/s (log scale, measured side by side)")
    axes.set_ylabel(f"English STS 7-task average (Spearman x100, {pairs} pairs/task)")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=130)
    plt.close(figure)


def markdown(result: dict) -> str:
    lines = [
        f"# Quality against cost: {result['model']}",
        "",
        f"Speed: {result['sentences']} seeded STS-B test sentences (seed {result['seed']}), {result['threads']} "
        f"threads, batch size {result['batch_size']}, best of {result['rounds']} rounds in shuffled order, one "
        f"process, {result['date']}. Quality: English STS 7-task average of each configuration's run in "
        f"docs/results ({result['pairs_per_task']} seeded pairs per task, the same pairs for every row; paired intervals in "
        "docs/results.md). **Bold**: Pareto-optimal (no other configuration is both at least as fast and at least as "
        "good). Rows marked [auto] run in dtype=\"auto\" (" + result.get("auto", "?") + "; CPU flags: "
        + (", ".join(result.get("cpu_flags", [])) or "none") + ") and carry the float32 row's STS score.",
        "",
        "| configuration | STS avg | sentences/s | speed vs MetaEOL | Pareto |",
        "|---|---:|---:|---:|---|",
    ]
    for row in sorted(result["configurations"], key=lambda r: -r["sentences_per_s"]):
        quality = "not run" if row["sts_average"] is None else f"{row['sts_average']:.2f}"
        label = f"**{row['label']}**" if row["pareto"] else row["label"]
        lines.append(f"| {label} | {quality} | {row['sentences_per_s']:.2f} | {row['speed_vs_metaeol']:.2f}x | "
                     f"{'yes' if row['pareto'] else ''} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "senteval"))
    parser.add_argument("--results", default=str(RESULTS), help="folder of the `metaeol eval` runs")
    parser.add_argument("--sentences", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--model", choices=sorted(MODELS), default="smollm2-135m",
                        help="whose rows to time (writes frontier.* for SmolLM2, frontier-<model>.* otherwise)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    results = Path(args.results)
    preset, pairs = MODELS[args.model]
    points = with_auto_points(configurations(results, args.model))
    sentences = sample_sts_b_sentences(Path(args.data_dir), args.sentences, args.seed)
    seconds = measure(points, sentences, args.rounds, args.batch_size, args.seed, preset)
    base = len(sentences) / min(seconds["MetaEOL"])
    rows = []
    for point in points:
        rate = len(sentences) / min(seconds[point.label])
        rows.append({"label": point.label, "run": point.run, "model": point.model, "settings": point.settings,
                     "sts_average": sts_average(results, point.run), "seconds": seconds[point.label],
                     "sentences_per_s": rate, "speed_vs_metaeol": rate / base})
    pareto(rows)
    from metaeol_integrations.core.precision import CPU_MATRIX_FLAGS, auto_precision, cpu_flags

    result = {"model": f"{args.model} ({preset}), CPU", "pairs_per_task": pairs, "date": time.strftime("%Y-%m-%d"),
              "machine": platform.platform(), "cpu_flags": list(cpu_flags(CPU_MATRIX_FLAGS)),
              "auto": auto_precision("cpu").describe(), "sentences": len(sentences), "seed": args.seed,
              "rounds": args.rounds, "threads": args.threads, "batch_size": args.batch_size, "configurations": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "frontier" if args.model == "smollm2-135m" else f"frontier-{args.model}"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    (out / f"{stem}.md").write_text(markdown(result), encoding="utf-8")
    plot(rows, out / f"{stem}.png", f"{result['model']}: STS average against speed ({result['date']})", pairs)
    print(markdown(result))


if __name__ == "__main__":
    main()
