"""Throughput of MetaEOL on SmolLM2-135M: the official batcher against this package, side by side in one run.

Configurations, each in its own subprocess (so peak RSS is its own), in one invocation:
  (a) official   a re-implementation of the official MetaEOL batcher: 8 prompts per sentence, left padding with pad
                 id 0, 2 sentences = 16 rows per batch, one full forward with all hidden states, last layer, last
                 position. The base model without the LM head (the official code also computed vocabulary logits,
                 which would only make it slower).
  (b) no-cache   this package, prefix cache off (packed rows and early exit still on)
  (c) cache      this package, prefix cache on (the default: packed rows, core/packing.py)
  (c') cache-padded  (c) with right-padded, length-bucketed chunks instead of packed rows (the path before packing)
  (d) prompteol  this package, the one-template PromptEOL baseline
  (e) int8       this package, MetaEOL with quantize="int8" (not exact: compared with (c) for speed only)
  (f) prompteol-int8  PromptEOL with quantize="int8" (speed against (d))

Reported for each: sentences/s and its ratio to (a), peak RSS, max abs and relative difference of the vectors
against (a), padded tokens computed per sentence against the floor (each prompt's tokens after its template's
shared prefix: the sentence and the template tail), and achieved GFLOP/s (2 x non-embedding parameters per
token) against a torch.matmul fp32 rate measured in the same run.

Run:  .venv/bin/python benchmarks/throughput.py [--data-dir ../shared/data/senteval] [--sentences 64] [--threads 2]
Writes benchmarks/results/throughput.json and benchmarks/results/throughput.md.
"""

from __future__ import annotations

import argparse
import csv
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

import numpy as np

CONFIGS = ("official", "no-cache", "cache", "cache-padded", "prompteol", "int8", "prompteol-int8")
LABELS = {
    "official": "(a) official batcher",
    "no-cache": "(b) package, prefix cache off",
    "cache": "(c) package, prefix cache on",
    "cache-padded": "(c') package, prefix cache on, padded chunks",
    "prompteol": "(d) package, PromptEOL",
    "int8": "(e) package, MetaEOL int8",
    "prompteol-int8": "(f) package, PromptEOL int8",
}
REPO = Path(__file__).resolve().parents[1]


def sample_sts_b_sentences(data_dir: Path, count: int, seed: int) -> list[str]:
    """Distinct sentences of the STS-B test split, a seeded sample."""
    path = data_dir / "STS" / "STSBenchmark" / "sts-test.csv"
    if not path.is_file():
        raise SystemExit(f"STS-B test file not found at {path}. Fix: pass --data-dir pointing at the SentEval data.")
    sentences = []
    with path.open(encoding="utf-8") as handle:
        for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(row) >= 7:
                sentences.extend(row[5:7])
    unique = sorted(set(sentences))
    return random.Random(seed).sample(unique, count)


def matmul_gflops(threads: int, size: int = 1024, repeats: int = 20) -> float:
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.matmul(a, b)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


# -- workers (run in subprocesses) ----------------------------------------------------------------------------------


def _count_tokens(model) -> list[int]:
    """Padded tokens entering each forward call of ``model``."""
    counted: list[int] = []

    def hook(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        counted.append(int(ids.numel()))

    model.register_forward_pre_hook(hook, with_kwargs=True)
    return counted


def run_official(sentences: list[str]) -> tuple[np.ndarray, float, int]:
    import torch
    from transformers import AutoModel, AutoTokenizer

    from metaeol_integrations import METAEOL_TEMPLATES, PRESETS, preprocess_sentence
    from metaeol_integrations.core.gguf import dequantized_folder

    folder = dequantized_folder(PRESETS["metaeol-smollm2-135m"].base_model_source())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"
    tokenizer.pad_token_id = 0
    model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    templates = [t.text for t in METAEOL_TEMPLATES.templates]

    def encode(batch: list[str]) -> torch.Tensor:
        prompts = [t.replace("{sentence}", preprocess_sentence(s)) for s in batch for t in templates]
        inputs = tokenizer(prompts, padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**inputs, output_hidden_states=True, return_dict=True).hidden_states
        return hidden[-1][:, -1, :].view(-1, len(templates), hidden[-1].shape[-1]).mean(1)

    encode(sentences[:2])  # warm-up
    counted = _count_tokens(model)
    start = time.perf_counter()
    vectors = torch.cat([encode(sentences[i : i + 2]) for i in range(0, len(sentences), 2)])
    return vectors.numpy(), time.perf_counter() - start, sum(counted)


def run_package(sentences: list[str], config: str, batch_size: int) -> tuple[np.ndarray, float, int]:
    import metaeol_integrations

    options = {"no-cache": {"prefix_cache": False}, "cache": {}, "cache-padded": {}, "prompteol": {"templates": "prompteol"},
               "int8": {"quantize": "int8"}, "prompteol-int8": {"templates": "prompteol", "quantize": "int8"}}[config]
    model = metaeol_integrations.load("metaeol-smollm2-135m", device="cpu", model_kwargs={"dtype": "float32"}, **options)
    if config == "cache-padded":
        model[0].packing = False
    model.encode(sentences[:2])  # warm-up (also fills the prefix cache once, as any real run would)
    counted = _count_tokens(model[0].auto_model)
    start = time.perf_counter()
    vectors = model.encode(sentences, batch_size=batch_size, convert_to_numpy=True)
    return vectors, time.perf_counter() - start, sum(counted)


def floor_tokens(sentences: list[str]) -> int:
    """Tokens after each prompt's template head (so: the sentence and the template tail), summed over all prompts:
    what must be computed whatever is cached. The head is the longest prefix the template's probe prompts share,
    which ends with the opening quote wherever the tokenizer keeps the quote a token of its own."""
    import metaeol_integrations

    module = metaeol_integrations.load("metaeol-smollm2-135m", device="cpu", model_kwargs={"dtype": "float32"})[0]
    prompts = module.prompt_tokenizer()
    batch = prompts.tokenize(sentences)
    longest_head = [max(len(prompts.shared_prefixes[i]) for i in indices) for indices in prompts.prefix_candidates]
    return sum(len(ids) - longest_head[row % batch.num_prompts] for row, ids in enumerate(batch.input_ids))


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    sentences = json.loads(Path(args.sentences_file).read_text(encoding="utf-8"))
    if args.worker == "official":
        vectors, seconds, tokens = run_official(sentences)
    else:
        vectors, seconds, tokens = run_package(sentences, args.worker, args.batch_size)
    np.save(args.vectors_file, vectors)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stats = {"seconds": seconds, "tokens_computed": tokens, "peak_rss_mib": peak_mib}
    if args.worker == "cache":
        stats["floor_tokens"] = floor_tokens(sentences)
        import metaeol_integrations

        model = metaeol_integrations.load("metaeol-smollm2-135m", device="cpu", model_kwargs={"dtype": "float32"})[0].auto_model
        embedding = model.get_input_embeddings().weight.numel()
        stats["non_embedding_params"] = sum(p.numel() for p in model.parameters()) - embedding
    Path(args.stats_file).write_text(json.dumps(stats), encoding="utf-8")


# -- driver ---------------------------------------------------------------------------------------------------------


def run_all(args: argparse.Namespace) -> dict:
    sentences = sample_sts_b_sentences(Path(args.data_dir), args.sentences, args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="metaeol-bench-"))
    (workdir / "sentences.json").write_text(json.dumps(sentences), encoding="utf-8")
    results: dict[str, dict] = {}
    for config in CONFIGS:
        print(f"running {LABELS[config]} ...", file=sys.stderr, flush=True)
        command = [
            sys.executable, __file__, "--worker", config, "--threads", str(args.threads),
            "--batch-size", str(args.batch_size), "--sentences-file", str(workdir / "sentences.json"),
            "--vectors-file", str(workdir / f"{config}.npy"), "--stats-file", str(workdir / f"{config}.json"),
        ]
        subprocess.run(command, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        results[config] = json.loads((workdir / f"{config}.json").read_text(encoding="utf-8"))
    matmul = matmul_gflops(args.threads)

    reference = np.load(workdir / "official.npy")
    floor = results["cache"]["floor_tokens"] / len(sentences)
    flops_per_token = 2 * results["cache"]["non_embedding_params"]
    base_rate = len(sentences) / results["official"]["seconds"]
    for config in CONFIGS:
        entry = results[config]
        vectors = np.load(workdir / f"{config}.npy")
        entry["sentences_per_s"] = len(sentences) / entry["seconds"]
        entry["ratio_to_official"] = entry["sentences_per_s"] / base_rate
        entry["tokens_per_sentence"] = entry["tokens_computed"] / len(sentences)
        entry["gflops"] = entry["tokens_computed"] * flops_per_token / entry["seconds"] / 1e9
        entry["fraction_of_matmul_rate"] = entry["gflops"] / matmul
        if config in ("official", "no-cache", "cache", "cache-padded"):
            difference = np.abs(vectors - reference)
            entry["max_abs_diff"] = float(difference.max())
            entry["max_rel_diff"] = float(
                (np.linalg.norm(vectors - reference, axis=1) / np.linalg.norm(reference, axis=1)).max()
            )
    cache_ratio = results["cache"]["ratio_to_official"]
    int8_speedup = {
        "metaeol": results["int8"]["sentences_per_s"] / results["cache"]["sentences_per_s"],
        "prompteol": results["prompteol-int8"]["sentences_per_s"] / results["prompteol"]["sentences_per_s"],
    }
    token_floor_ratio = results["official"]["tokens_per_sentence"] / floor
    return {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores visible, {args.threads} torch threads",
        "model": "metaeol-smollm2-135m (fp32, CPU)",
        "sentences": len(sentences),
        "seed": args.seed,
        "package_batch_size": args.batch_size,
        "matmul_fp32_gflops": matmul,
        "floor_tokens_per_sentence": floor,
        "arithmetic_floor_speedup": token_floor_ratio,
        "achieved_fraction_of_floor_speedup": cache_ratio / token_floor_ratio,
        "int8_speedup_vs_float32": int8_speedup,
        "packed_vs_padded_chunks": results["cache"]["sentences_per_s"] / results["cache-padded"]["sentences_per_s"],
        "peak_rss_cache_vs_no_cache": results["cache"]["peak_rss_mib"] / results["no-cache"]["peak_rss_mib"],
        "results": {LABELS[c]: results[c] for c in CONFIGS},
    }


def markdown(report: dict) -> str:
    lines = [
        f"Run {report['date']}: {report['model']}, {report['sentences']} STS-B test sentences (seed {report['seed']}), "
        f"{report['machine']}; torch.matmul fp32 rate {report['matmul_fp32_gflops']:.1f} GFLOP/s.",
        "",
        "| configuration | sentences/s | vs (a) | peak RSS MiB | max abs diff | max rel diff | tokens/sentence | GFLOP/s (share of matmul) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, entry in report["results"].items():
        abs_diff = f"{entry['max_abs_diff']:.2e}" if "max_abs_diff" in entry else "n/a"
        rel_diff = f"{entry['max_rel_diff']:.2e}" if "max_rel_diff" in entry else "n/a"
        lines.append(
            f"| {label} | {entry['sentences_per_s']:.2f} | {entry['ratio_to_official']:.2f}x | "
            f"{entry['peak_rss_mib']:.0f} | {abs_diff} | {rel_diff} | {entry['tokens_per_sentence']:.0f} | "
            f"{entry['gflops']:.1f} ({entry['fraction_of_matmul_rate']:.0%}) |"
        )
    lines += [
        "",
        f"Floor: {report['floor_tokens_per_sentence']:.0f} tokens per sentence (sentence + template tails), so the "
        f"arithmetic bound on (c) vs (a) is {report['arithmetic_floor_speedup']:.2f}x; (c) reached "
        f"{report['achieved_fraction_of_floor_speedup']:.0%} of it. Packed rows against padded chunks, (c)/(c'): "
        f"{report['packed_vs_padded_chunks']:.2f}x; peak RSS (c)/(b): {report['peak_rss_cache_vs_no_cache']:.2f}.",
        f"int8 against the float32 exact path in the same run: MetaEOL (e)/(c) "
        f"{report['int8_speedup_vs_float32']['metaeol']:.2f}x, PromptEOL (f)/(d) "
        f"{report['int8_speedup_vs_float32']['prompteol']:.2f}x.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("METAEOL_SENTEVAL_DIR", str(REPO.parent / "shared/data/senteval")))
    parser.add_argument("--sentences", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32, help="texts per encode batch for the package runs")
    parser.add_argument("--output-dir", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--sentences-file", help=argparse.SUPPRESS)
    parser.add_argument("--vectors-file", help=argparse.SUPPRESS)
    parser.add_argument("--stats-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    report = run_all(args)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / "throughput.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    table = markdown(report)
    (output / "throughput.md").write_text(table, encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
