"""What Ray Data costs on one CPU machine: `embed_files` against a plain single-process `encode`, side by side.

SmolLM2-135M (the default preset, MetaEOL's 8 prompts, prefix cache on) embeds the same seeded sample of English
MR sentences three ways, in one run:
  single       `model.encode` in this process (torch's default threads); model loading timed separately
  ray-1        `embed_files` on a local Ray instance, 1 actor x 1 CPU (Ray limits the actor's torch threads to
               its CPU reservation)
  ray-2        `embed_files`, 2 actors x 0.5 CPU (a pool of two models sharing the two cores)

Reported: wall time end to end (for Ray: reading the input, starting actors, loading a model in each, embedding,
writing parquet), sentences/s, the ratio to `single` (including its load time, so all three do the same work), and
the largest difference between the Ray vectors and the single-process ones. On a GPU cluster the per-actor work
is the same; see docs/scaling.md for the per-GPU estimate.

Run:  .venv/bin/python benchmarks/ray_overhead.py [--data-dir ../shared/data/senteval] [--sentences 96]
Writes benchmarks/results/ray_overhead.json and benchmarks/results/ray_overhead.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def sample_sentences(data_dir: str | None, count: int, seed: int = 0) -> list[str]:
    from metaeol_integrations.evaluation.data import read_transfer

    texts = read_transfer("MR", data_dir).splits["all"].texts
    return random.Random(seed).sample(texts, count)


def run_ray(corpus: Path, output: Path, num_actors: int, cpus: float) -> tuple[float, dict[str, np.ndarray]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from metaeol_integrations.distributed import RayEmbedConfig, embed_files

    config = RayEmbedConfig(num_actors=num_actors, num_cpus_per_actor=cpus, batch_size=16)
    start = time.perf_counter()
    summary = embed_files(corpus, output, config)
    seconds = time.perf_counter() - start
    table = pa.concat_tables([pq.read_table(part) for part in sorted(output.glob("part-*.parquet"))])
    vectors = dict(zip(table.column("id").to_pylist(), table.column("embedding").to_numpy(zero_copy_only=False)))
    assert summary.rows_embedded == len(vectors)
    return seconds, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="SentEval folder (default: METAEOL_SENTEVAL_DIR or ../shared/data/senteval)")
    parser.add_argument("--sentences", type=int, default=96)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args()

    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray

    import metaeol_integrations

    texts = sample_sentences(args.data_dir, args.sentences)
    rows: list[dict] = []

    start = time.perf_counter()
    model = metaeol_integrations.load(metaeol_integrations.DEFAULT_PRESET)
    load_seconds = time.perf_counter() - start
    start = time.perf_counter()
    single = model.encode(texts, batch_size=16, convert_to_numpy=True)
    encode_seconds = time.perf_counter() - start
    single_total = load_seconds + encode_seconds
    rows.append({"config": "single", "actors": 0, "cpus_per_actor": None, "seconds": single_total,
                 "load_seconds": load_seconds, "encode_seconds": encode_seconds, "max_abs_diff": 0.0})
    del model

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as folder:
            corpus = Path(folder) / "corpus.parquet"
            pq.write_table(pa.table({"id": list(range(len(texts))), "text": texts}), corpus, row_group_size=16)
            for name, actors, cpus in (("ray-1", 1, 1.0), ("ray-2", 2, 0.5)):
                seconds, vectors = run_ray(corpus, Path(folder) / name, actors, cpus)
                got = np.stack([vectors[i] for i in range(len(texts))])
                rows.append({"config": name, "actors": actors, "cpus_per_actor": cpus, "seconds": seconds,
                             "max_abs_diff": float(np.abs(got - single).max())})
    finally:
        ray.shutdown()

    for row in rows:
        row["sentences_per_s"] = len(texts) / row["seconds"]
        row["time_vs_single"] = row["seconds"] / single_total
    result = {
        "model": metaeol_integrations.DEFAULT_PRESET, "sentences": len(texts), "source": "MR (English), seed 0",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "ray": ray.__version__},
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ray_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Ray Data overhead on one machine ({result['machine']['cpus']} CPUs, ray {ray.__version__})",
        "",
        f"{metaeol_integrations.DEFAULT_PRESET}, MetaEOL (8 prompts), {len(texts)} MR sentences (seed 0), "
        "one run; times are end to end including model loading.",
        "",
        "| config | actors x CPUs | wall s | sentences/s | time / single | max abs diff vs single |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        pool = "-" if not row["actors"] else f"{row['actors']} x {row['cpus_per_actor']:g}"
        lines.append(f"| {row['config']} | {pool} | {row['seconds']:.1f} | {row['sentences_per_s']:.2f} | "
                     f"{row['time_vs_single']:.2f} | {row['max_abs_diff']:.1e} |")
    lines += ["", f"single: load {load_seconds:.1f} s + encode {encode_seconds:.1f} s."]
    (out / "ray_overhead.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
