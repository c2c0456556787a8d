"""float32 against ``dtype="auto"`` (and int8) for every offline preset, side by side in one run, interleaved.

For each preset and configuration, a subprocess loads the model (so its peak RSS is its own), warms up on other
texts, then times seeded SciFact abstracts (title + text, documents/s) and STS-B test sentences (sentences/s). Rounds
interleave the configurations (float32, auto, int8, float32, auto, ...) and the best round counts, so load on the
shared machine hits every configuration alike. The parent compares each configuration's vectors with float32's
(cosine, min and mean) and measures the float32 and bfloat16 matmul rates in the same run; the CPU's flags are printed.

``--options`` measures, on one preset, the ways of running in bfloat16 that were considered: the whole model in
bfloat16 (plain transformers), float32 weights under ``torch.autocast``, each Linear cast to bfloat16 on its own, and
the package's mode (attention and MLP blocks in bfloat16, residual stream and norms float32).

``--random-weights FOLDER`` uses the LLM in FOLDER as every preset's base (random weights of the same shape, built by
``benchmarks/gpu_precision.sh``), for a machine that cannot carry the real weights (the GPU check); the cosines then
describe the mechanism on random weights, the speed the real shapes. ``--texts``/``--write-texts`` carry the sampled
texts to a machine without the data.

Run:  .venv/bin/python benchmarks/precision.py [--documents 8] [--sentences 32] [--rounds 2] [--presets a,b]
      [--options] [--device cpu] [--out STEM]
Writes benchmarks/results/precision.json and .md (or STEM.json / .md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PRESETS = ("metaeol-smollm2-135m", "metaeol-plus-smollm2-135m", "metaeol-rag-smollm2-135m",
           "metaeol-gemma3-270m", "metaeol-plus-gemma3-270m", "metaeol-rag-gemma3-270m")
CONFIGS = {
    "float32": {"model_kwargs": {"dtype": "float32"}},
    "auto": {"model_kwargs": {"dtype": "auto"}},
    "bfloat16": {"model_kwargs": {"dtype": "bfloat16"}},
    "float16": {"model_kwargs": {"dtype": "float16"}},
    "int8": {"model_kwargs": {"dtype": "float32"}, "quantize": "int8"},
}


def sample_texts(documents: int, sentences: int, seed: int = 0) -> dict[str, list[str]]:
    from metaeol_integrations.evaluation.beir import read_beir
    from metaeol_integrations.evaluation.data import read_sts_benchmark

    abstracts = random.Random(seed).sample(read_beir("scifact").doc_texts, documents + 2)
    sts = read_sts_benchmark("test")
    pool = sorted(set(sts.sentences1) | set(sts.sentences2))
    chosen = random.Random(seed).sample(pool, sentences + 4)
    return {"documents": abstracts[2:], "documents_warmup": abstracts[:2],
            "sentences": chosen[4:], "sentences_warmup": chosen[:4]}


def load_model(preset: str, options: dict, device: str, random_weights: str | None):
    import metaeol_integrations

    if random_weights is None:
        return metaeol_integrations.load(preset, device=device, **options)
    from metaeol_integrations.presets import PRESETS as NAMED

    named = NAMED[preset]
    model = metaeol_integrations.load(random_weights, named.recipe, device=device, **options)
    if named.embed_filter is not None:
        from metaeol_integrations.postprocessing import add_embed_filter

        add_embed_filter(model, named.embed_filter)
    return model


def time_encode(model, texts: list[str], batch_size: int, device: str) -> tuple[object, float]:
    import torch

    start = time.perf_counter()
    vectors = model.encode(texts, batch_size=batch_size, convert_to_numpy=True)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return vectors, time.perf_counter() - start


def worker(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    texts = json.loads(Path(args.texts_file).read_text())
    start = time.perf_counter()
    model = load_model(args.preset, CONFIGS[args.worker], args.device, args.random_weights)
    load_s = time.perf_counter() - start
    stats = {"load_s": load_s, "dtype": model[0].precision.describe()}
    for kind in ("documents", "sentences"):
        time_encode(model, texts[f"{kind}_warmup"], 16, args.device)
        vectors, seconds = time_encode(model, texts[kind], 16, args.device)
        np.save(f"{args.vectors_stem}-{kind}.npy", vectors)
        stats[f"{kind}_per_s"] = len(texts[kind]) / seconds
    stats["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.device.startswith("cuda"):
        stats["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    Path(args.stats_file).write_text(json.dumps(stats))


def machine_facts(threads: int, device: str) -> dict:
    import torch

    from metaeol_integrations.core.precision import CPU_MATRIX_FLAGS, auto_precision, cpu_flags, matmul_rate

    torch.set_num_threads(threads)
    facts = {"platform": platform.platform(), "processor": platform.processor(), "torch": torch.__version__,
             "threads": threads, "device": device, "cpu_flags": list(cpu_flags(CPU_MATRIX_FLAGS)),
             "auto_choice": auto_precision(device).describe()}
    for dtype in (torch.float32, torch.bfloat16):
        size = 4096 if device.startswith("cuda") else 1024
        facts[f"matmul_gflops_{str(dtype).removeprefix('torch.')}"] = matmul_rate(dtype, device, size=size, repeats=10)
    if device.startswith("cuda"):
        facts["gpu"] = torch.cuda.get_device_name()
    return facts


def cosines(a, b) -> tuple[float, float]:
    """Min and mean of the row-wise cosine between two vector sets (the harness's STS cosine)."""
    from metaeol_integrations.evaluation.sts import cosine_similarities

    values = cosine_similarities(a, b)
    return float(values.min()), float(values.mean())


def run_presets(args: argparse.Namespace, texts: dict, workdir: Path) -> list[dict]:
    import numpy as np

    texts_file = workdir / "texts.json"
    texts_file.write_text(json.dumps(texts))
    rows = []
    for preset in args.presets:
        # A CPU: float32, auto, int8 (float16 there is emulated, ~100x slower); a GPU: float32, auto, float16.
        configs = ["float32", "auto", "float16" if args.device.startswith("cuda") else "int8"]
        best: dict[str, dict] = {}
        for round_index in range(args.rounds):
            for config in configs:
                stem = workdir / f"{preset}-{config}"
                command = [sys.executable, __file__, "--worker", config, "--preset", preset, "--texts-file",
                           str(texts_file), "--vectors-stem", str(stem), "--stats-file", f"{stem}.json",
                           "--threads", str(args.threads), "--device", args.device]
                if args.random_weights:
                    command += ["--random-weights", args.random_weights]
                result = subprocess.run(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True,
                                        text=True)
                if result.returncode != 0:
                    print(f"{preset} {config}: failed\n{result.stderr[-2000:]}", file=sys.stderr)
                    break
                stats = json.loads(Path(f"{stem}.json").read_text())
                kept = best.setdefault(config, stats)
                for key in ("documents_per_s", "sentences_per_s"):
                    kept[key] = max(kept[key], stats[key])
                print(f"round {round_index} {preset} {config}: {stats}", file=sys.stderr, flush=True)
        if "float32" not in best:
            continue
        for config, stats in best.items():
            row = {"preset": preset, "config": config, **stats}
            for kind in ("documents", "sentences"):
                reference = np.load(workdir / f"{preset}-float32-{kind}.npy")
                row[f"{kind}_vs_float32"] = stats[f"{kind}_per_s"] / best["float32"][f"{kind}_per_s"]
                row[f"{kind}_cosine_min"], row[f"{kind}_cosine_mean"] = cosines(
                    np.load(workdir / f"{preset}-{config}-{kind}.npy"), reference)
            rows.append(row)
    return rows


def run_options(args: argparse.Namespace, texts: dict) -> list[dict]:
    """The ways of running in bfloat16, one process, interleaved rounds, on the first preset."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(args.threads)
    preset = args.presets[0]
    device = args.device

    class CastLinear(nn.Module):
        """One Linear with a bfloat16 weight, its input cast on entry and its output cast back to float32."""

        def __init__(self, linear: nn.Linear) -> None:
            super().__init__()
            self.weight = nn.Parameter(linear.weight.detach().to(torch.bfloat16), requires_grad=False)
            self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().to(torch.bfloat16),
                                                                      requires_grad=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.linear(x.to(torch.bfloat16), self.weight, self.bias).to(x.dtype)

    def build(option: str):
        dtype = "bfloat16" if option == "blocks (package)" else "float32"
        model = load_model(preset, {"model_kwargs": {"dtype": dtype}}, device, args.random_weights)
        decoder = model[0].auto_model
        if option == "whole model bfloat16":
            decoder.to(torch.bfloat16)
        elif option == "each Linear bfloat16":
            for name, module in list(decoder.named_modules()):
                if isinstance(module, nn.Linear):
                    parent, _, attribute = name.rpartition(".")
                    setattr(decoder.get_submodule(parent) if parent else decoder, attribute, CastLinear(module))
        model[0].clear_prefix_cache()
        return model

    options = ["float32", "whole model bfloat16", "autocast", "each Linear bfloat16", "blocks (package)"]
    models = {option: build(option) for option in options}
    best: dict[str, dict] = {}
    vectors: dict[str, dict] = {}
    for _ in range(args.rounds):
        for option, model in models.items():
            for kind in ("documents", "sentences"):
                context = (torch.autocast(torch.device(device).type, dtype=torch.bfloat16) if option == "autocast"
                           else torch.no_grad())
                with context:
                    time_encode(model, texts[f"{kind}_warmup"], 16, device)
                    got, seconds = time_encode(model, texts[kind], 16, device)
                vectors.setdefault(option, {})[kind] = np.asarray(got, dtype=np.float32)
                entry = best.setdefault(option, {})
                entry[f"{kind}_per_s"] = max(entry.get(f"{kind}_per_s", 0.0), len(texts[kind]) / seconds)
    rows = []
    for option in options:
        row = {"preset": preset, "option": option, **best[option]}
        for kind in ("documents", "sentences"):
            row[f"{kind}_vs_float32"] = best[option][f"{kind}_per_s"] / best["float32"][f"{kind}_per_s"]
            row[f"{kind}_cosine_min"], row[f"{kind}_cosine_mean"] = cosines(vectors[option][kind],
                                                                            vectors["float32"][kind])
        rows.append(row)
    return rows


def markdown(report: dict) -> str:
    facts = report["machine"]
    lines = [f"# Precision benchmark ({report['date']})", "",
             f"Machine: {facts['platform']}, device {facts['device']}{' (' + facts['gpu'] + ')' if 'gpu' in facts else ''}"
             f", torch {facts['torch']}, {facts['threads']} threads; CPU flags: {', '.join(facts['cpu_flags']) or 'none'}"
             f"; `dtype=\"auto\"` chose {facts['auto_choice']}.",
             f"matmul rate in this run: float32 {facts['matmul_gflops_float32']:.0f} GFLOP/s, bfloat16 "
             f"{facts['matmul_gflops_bfloat16']:.0f} GFLOP/s "
             f"({facts['matmul_gflops_bfloat16'] / facts['matmul_gflops_float32']:.1f}x).",
             f"Texts: {report['documents']} SciFact abstracts, {report['sentences']} STS-B test sentences (seed 0); "
             f"best of {report['rounds']} interleaved rounds; batch size 16."
             + (" **Random weights** of each preset's shapes (see --random-weights)." if report["random_weights"] else ""),
             ""]
    if report["presets"]:
        lines += ["| preset | config | computes in | documents/s | vs float32 | sentences/s | vs float32 | cosine to "
                  "float32, abstracts (min / mean) | sentences (min / mean) | peak RSS MiB |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row in report["presets"]:
            lines.append(
                f"| {row['preset']} | {row['config']} | {row['dtype']} | {row['documents_per_s']:.2f} | "
                f"{row['documents_vs_float32']:.2f}x | {row['sentences_per_s']:.2f} | {row['sentences_vs_float32']:.2f}x"
                f" | {row['documents_cosine_min']:.5f} / {row['documents_cosine_mean']:.5f} | "
                f"{row['sentences_cosine_min']:.5f} / {row['sentences_cosine_mean']:.5f} | "
                f"{row['peak_rss_mib']:.0f}" + (f" (GPU {row['peak_gpu_mib']:.0f})" if "peak_gpu_mib" in row else "")
                + " |")
    if report["options"]:
        lines += ["", f"Ways of running in bfloat16 ({report['options'][0]['preset']}, one process):", "",
                  "| option | documents/s vs float32 | cosine min (abstracts) | sentences/s vs float32 | cosine min "
                  "(sentences) |", "|---|---|---|---|---|"]
        for row in report["options"]:
            lines.append(f"| {row['option']} | {row['documents_vs_float32']:.2f}x | {row['documents_cosine_min']:.5f} "
                         f"| {row['sentences_vs_float32']:.2f}x | {row['sentences_cosine_min']:.5f} |")
    return "\n".join(lines) + "\n"


def installed_presets(names: list[str], random_weights: str | None) -> list[str]:
    from metaeol_integrations.errors import ModelNotAvailableError
    from metaeol_integrations.presets import PRESETS as NAMED

    kept = []
    for name in names:
        try:
            if random_weights is None:
                NAMED[name].base_model_source()
            elif "gemma" in name:  # the random-weights folder is one architecture (SmolLM2's)
                continue
            kept.append(name)
        except ModelNotAvailableError as error:
            print(f"skipping {name}: {error}", file=sys.stderr)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=8)
    parser.add_argument("--sentences", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated; uninstalled ones are skipped")
    parser.add_argument("--options", action="store_true", help="also compare the ways of running in bfloat16")
    parser.add_argument("--no-presets", action="store_true", help="only --options")
    parser.add_argument("--random-weights", help="a model folder used as every preset's base instead of its weights "
                        "(random weights of the same shape, for a machine that cannot carry the real ones)")
    parser.add_argument("--texts", help="a JSON file of the texts (written by --write-texts) instead of reading the data")
    parser.add_argument("--write-texts", help="write the sampled texts to this JSON file and stop")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "precision"))
    parser.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--preset", help=argparse.SUPPRESS)
    parser.add_argument("--texts-file", help=argparse.SUPPRESS)
    parser.add_argument("--vectors-stem", help=argparse.SUPPRESS)
    parser.add_argument("--stats-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    texts = json.loads(Path(args.texts).read_text()) if args.texts else sample_texts(args.documents, args.sentences)
    if args.write_texts:
        Path(args.write_texts).write_text(json.dumps(texts))
        return
    args.documents, args.sentences = len(texts["documents"]), len(texts["sentences"])
    args.presets = installed_presets(args.presets.split(","), args.random_weights)
    report = {"date": time.strftime("%Y-%m-%d"), "documents": args.documents, "sentences": args.sentences,
              "rounds": args.rounds, "random_weights": bool(args.random_weights),
              "machine": machine_facts(args.threads, args.device), "presets": [], "options": []}
    with tempfile.TemporaryDirectory() as workdir:
        if not args.no_presets:
            report["presets"] = run_presets(args, texts, Path(workdir))
    if args.options:
        report["options"] = run_options(args, texts)
    Path(f"{args.out}.json").write_text(json.dumps(report, indent=2))
    Path(f"{args.out}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
