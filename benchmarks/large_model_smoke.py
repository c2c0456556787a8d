"""The flagship shape, simulated: a model of Llama-2-7B's shape with random weights, embedded with MetaEOL in bfloat16.

No download: the config is Llama-2-7B's (hidden 4096, 32 layers of 32 heads, MLP 11008, RMSNorm eps 1e-5); the
tokenizer is SmolLM2's (from the offline default model), so the vocabulary is its 49,152 tokens instead of 32,000 (the
embedding matrix is 0.07 B parameters larger; the decoder is the same). The weights are random, written once as a
bfloat16 safetensors checkpoint (13.5 GB, like the released fp16 one), then a subprocess loads that folder the way a
user would (``load(folder, model_kwargs={"dtype": "bfloat16"})``: 16-bit blocks, float32 embeddings, norms and residual
stream), embeds a few STS-B-like sentences with the 8 MetaEOL templates and the prefix cache, and reports load time,
peak RSS and sentences/s. It shows whether ``metaeol-llama2-7b``'s path fits in 24 GiB and what a sentence costs here.
Not part of the test suite (13.5 GB of disk, minutes of CPU).

Run:  .venv/bin/python benchmarks/large_model_smoke.py [--device cpu] [--sentences 8] [--folder /tmp/llama2-7b-shape]
      [--out STEM]
Writes benchmarks/results/large_model_smoke.json and .md (or STEM.json / .md).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LLAMA2_7B = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=32, max_position_embeddings=4096, rms_norm_eps=1e-5, hidden_act="silu")
SENTENCES = [
    "A man is playing a guitar.", "Someone plays an instrument.", "The stock market fell today.",
    "A woman is slicing an onion.", "Two dogs run across a snowy field.", "The cat sat on the mat.",
    "Scientists discovered a new species of frog in the rainforest.", "He could not find his keys this morning.",
    "A child is riding a bicycle down the street.", "The government announced new tax rules on Monday.",
    "Heavy rain caused flooding in several towns.", "She is reading a book in the park.",
]


def tokenizer_folder() -> str:
    """The offline default model's dequantised folder (tokenizer files), made on first use."""
    from metaeol_integrations.core.gguf import dequantized_folder
    from metaeol_integrations.presets import PRESETS

    return str(dequantized_folder(PRESETS["metaeol-smollm2-135m"].base_model_source()))


def build_folder(folder: Path, tokenizer_source: str) -> dict:
    """Write a random Llama-2-7B-shaped checkpoint in bfloat16 (skipped when it is already there)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaModel

    if (folder / "config.json").is_file():
        return {"built_s": None}
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, **LLAMA2_7B)
    config.dtype = torch.bfloat16
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        model = LlamaModel(config)
    finally:
        torch.set_default_dtype(previous)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    parameters = sum(p.numel() for p in model.parameters())
    del model
    return {"built_s": time.perf_counter() - start, "parameters": parameters}


def worker(args: argparse.Namespace) -> None:
    import torch

    import metaeol_integrations

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model = metaeol_integrations.load(args.folder, templates="metaeol", device=args.device,
                                      model_kwargs={"dtype": args.dtype})
    load_s = time.perf_counter() - start
    sentences = (SENTENCES * 8)[: args.sentences]
    start = time.perf_counter()
    model.encode(sentences[:2], batch_size=16)  # builds the 8 prefix caches
    warmup_s = time.perf_counter() - start
    start = time.perf_counter()
    vectors = model.encode(sentences, batch_size=16, convert_to_numpy=True)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    result = {
        "dtype": model[0].precision.describe(), "load_s": load_s, "first_call_s": warmup_s,
        "sentences": len(sentences), "sentences_per_s": len(sentences) / seconds, "seconds_per_sentence":
        seconds / len(sentences), "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "embedding_dimension": int(vectors.shape[1]), "finite": bool(torch.isfinite(torch.from_numpy(vectors)).all()),
        "parameters": sum(p.numel() for p in model[0].auto_model.parameters()),
    }
    if args.device.startswith("cuda"):
        result["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
        result["gpu"] = torch.cuda.get_device_name()
    Path(args.stats_file).write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="bfloat16", help="what the user passes (bfloat16, auto, float32...)")
    parser.add_argument("--sentences", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--folder", default="/tmp/llama2-7b-shape")
    parser.add_argument("--tokenizer", help="a folder with tokenizer files (default: the offline default model's)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "large_model_smoke"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stats-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    from metaeol_integrations.core.precision import CPU_MATRIX_FLAGS, cpu_flags

    build = build_folder(Path(args.folder), args.tokenizer or tokenizer_folder())
    stats_file = Path(args.folder) / "smoke-stats.json"
    subprocess.run([sys.executable, __file__, "--worker", "--folder", args.folder, "--device", args.device,
                    "--dtype", args.dtype, "--sentences", str(args.sentences), "--threads", str(args.threads),
                    "--stats-file", str(stats_file)], check=True)
    import torch

    report = {"date": time.strftime("%Y-%m-%d"), "platform": platform.platform(), "torch": torch.__version__,
              "threads": args.threads, "device": args.device, "cpu_flags": list(cpu_flags(CPU_MATRIX_FLAGS)),
              "shape": LLAMA2_7B, **build, **json.loads(stats_file.read_text())}
    Path(f"{args.out}.json").write_text(json.dumps(report, indent=2))
    lines = [
        f"# Llama-2-7B shape, random weights, MetaEOL ({report['date']})", "",
        f"{report['platform']}, device {args.device}{' (' + report['gpu'] + ')' if 'gpu' in report else ''}, torch "
        f"{report['torch']}, {args.threads} threads; CPU flags: {', '.join(report['cpu_flags']) or 'none'}.", "",
        "| computes in | parameters | load s | first call s (8 prefix caches) | sentences/s | s per sentence | "
        "peak RSS GiB |" + (" peak GPU GiB |" if "peak_gpu_gib" in report else ""),
        "|---|---|---|---|---|---|---|" + ("---|" if "peak_gpu_gib" in report else ""),
        f"| {report['dtype']} | {report['parameters'] / 1e9:.2f} B | {report['load_s']:.1f} | "
        f"{report['first_call_s']:.1f} | {report['sentences_per_s']:.3f} | {report['seconds_per_sentence']:.2f} | "
        f"{report['peak_rss_gib']:.1f} |" + (f" {report['peak_gpu_gib']:.1f} |" if "peak_gpu_gib" in report else ""),
    ]
    Path(f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
