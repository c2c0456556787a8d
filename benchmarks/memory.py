"""Peak memory of encoding: how it grows with the number of texts, and how max_tokens_per_forward bounds it.

Each configuration runs in its own subprocess. Reported: RSS after loading the model and one warm-up call (the
baseline), the peak RSS of the measured call alone (the kernel's peak counter, VmHWM, is reset through
/proc/self/clear_refs just before it), and the difference.

  tiny-N        a 2-layer random Llama (hidden 64) with SmolLM2's real tokenizer, MetaEOL's 8 prompts, on N = 100 /
                1,000 / 10,000 short texts (80,000 prompts at N = 10,000): the package's own bookkeeping (prompts,
                masks, prefix caches, outputs) as the input list grows; the model's compute and weights are
                negligible, so this isolates what grows with N.
  smollm2-capC  SmolLM2-135M (MetaEOL, 8 prompts) on 16 long texts (128 prompts, ~55,000 tokens after the cached prefixes) truncated at 512 tokens, with
                max_tokens_per_forward = C: the activation memory the cap bounds.

Run:  .venv/bin/python benchmarks/memory.py [--threads 2]
Writes benchmarks/results/memory.json and benchmarks/results/memory.md.
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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORDS = ("man", "woman", "guitar", "market", "river", "plays", "runs", "fell", "quickly", "bright", "the", "a", "of")
TINY_SIZES = (100, 1_000, 10_000)
CAPS = (2_048, 8_192, 32_768)


def rss_mib() -> float:
    with open("/proc/self/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mib() -> float:
    """Peak RSS since the last :func:`reset_peak` (VmHWM), else since the process started."""
    with open("/proc/self/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter, so the peak covers only what follows (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def texts(count: int, words: tuple[int, int], seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(*words))) + "." for _ in range(count)]


def tiny_llama_with_real_tokenizer() -> Path:
    """A random 2-layer Llama saved with SmolLM2's tokenizer (from the package's dequantised GGUF cache)."""
    import tempfile

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaModel

    from metaeol_integrations.core.gguf import dequantized_folder
    from metaeol_integrations.presets import PRESETS

    tokenizer = AutoTokenizer.from_pretrained(dequantized_folder(PRESETS["metaeol-smollm2-135m"].base_model_source()))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048)
    torch.manual_seed(0)
    folder = Path(tempfile.mkdtemp(prefix="metaeol-memory-"))
    LlamaModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def run_one(name: str, threads: int) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    import metaeol_integrations

    if name.startswith("tiny-"):
        model = metaeol_integrations.load(str(tiny_llama_with_real_tokenizer()), device="cpu",
                                          model_kwargs={"dtype": "float32"})
        inputs, batch_size = texts(int(name.split("-")[1]), (5, 30), seed=0), 32
    else:
        cap = int(name.removeprefix("smollm2-cap"))
        model = metaeol_integrations.load("metaeol-smollm2-135m", device="cpu", max_tokens_per_forward=cap,
                                          model_kwargs={"dtype": "float32"})
        inputs, batch_size = texts(16, (400, 500), seed=1), 16
    model.encode(inputs[:2], batch_size=batch_size)
    baseline = rss_mib()
    peak_is_call_only = reset_peak()
    start = time.perf_counter()
    vectors = model.encode(inputs, batch_size=batch_size, convert_to_numpy=True)
    seconds = time.perf_counter() - start
    assert vectors.shape[0] == len(inputs) and np.isfinite(vectors).all()
    return {
        "config": name, "texts": len(inputs), "batch_size": batch_size,
        "max_tokens_per_forward": model[0].max_tokens_per_forward, "max_seq_length": model.max_seq_length,
        "baseline_rss_mib": round(baseline, 1), "peak_rss_mib": round(peak_mib(), 1),
        "peak_above_baseline_mib": round(peak_mib() - baseline, 1), "seconds": round(seconds, 1),
        "output_mib": round(vectors.nbytes / 2**20, 2), "peak_covers_call_only": peak_is_call_only,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--config", help=argparse.SUPPRESS)  # internal: run one configuration in this process
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--configs", nargs="+", help="run only these (others keep their rows from an earlier run)")
    args = parser.parse_args()
    if args.config:
        print(json.dumps(run_one(args.config, args.threads)))
        return
    configs = args.configs or [f"tiny-{n}" for n in TINY_SIZES] + [f"smollm2-cap{c}" for c in CAPS]
    out = Path(args.out)
    earlier = out / "memory.json"
    rows = []
    if args.configs and earlier.is_file():
        rows = [row for row in json.loads(earlier.read_text())["rows"] if row["config"] not in configs]
    for config in configs:
        done = subprocess.run(
            [sys.executable, __file__, "--config", config, "--threads", str(args.threads)],
            capture_output=True, text=True, check=True, cwd=REPO, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        )
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads,
            "date": time.strftime("%Y-%m-%d")}
    (out / "memory.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2), encoding="utf-8")
    lines = [
        "# Peak memory of encoding", "", f"{meta}", "",
        "| config | texts | max tokens/forward | baseline RSS MiB | peak RSS MiB | peak - baseline MiB | output MiB | s |",
        "|---|---|---|---|---|---|---|---|",
    ] + [
        f"| {r['config']} | {r['texts']:,} | {r['max_tokens_per_forward']:,} | {r['baseline_rss_mib']} | "
        f"{r['peak_rss_mib']} | {r['peak_above_baseline_mib']} | {r['output_mib']} | {r['seconds']} |"
        for r in rows
    ]
    (out / "memory.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
