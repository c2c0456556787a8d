"""What Ray Data costs on one CPU machine, and what a kill costs: `embed_files` against a plain `encode`.

The default SmolLM2 preset with PromptEOL (one prompt: cheap enough for volume; `--templates metaeol` for the
8-prompt method) embeds the same seeded sample of English MR sentences, in one run:
  single       `model.encode` in this process (torch's default threads); model loading timed separately
  ray-2        `embed_files` on a local Ray instance, 2 actors x 0.5 CPU (a pool of two models sharing the two
               cores; a single 1-CPU actor only halves throughput here, as Ray limits its torch threads to its CPU
               reservation: 1.85x the single-process time in the previous version of this benchmark)
Each Ray run commits one parquet file per batch (`--commit-rows` rows).

Then the kill: a separate driver process runs ray-2 on a fresh output folder and is killed with SIGKILL (its whole
process group) at a seeded random moment between its first commit and its expected end. The actors log every batch
they start; rows lost = rows in started batches - rows committed (work done but not kept). A re-run then completes
the folder, and every id is checked to be present exactly once.

Reported: wall time end to end (for Ray: reading the input, starting actors, loading a model in each, embedding,
committing parquet), sentences/s, the ratio to `single` (including its load time, so all do the same work), the
largest difference between the Ray vectors and the single-process ones, and the kill's numbers.

Run:  .venv/bin/python benchmarks/ray_overhead.py [--sentences 2000] [--templates prompteol] [--commit-rows 64]
Writes benchmarks/results/ray_overhead.json and benchmarks/results/ray_overhead.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
STARTED_LOG = "started-batches.log"


def sample_sentences(data_dir: str | None, count: int, seed: int = 0) -> list[str]:
    from metaeol_integrations.evaluation.data import read_transfer

    texts = read_transfer("MR", data_dir).splits["all"].texts
    return random.Random(seed).sample(texts, count)


def ray_config(templates: str, actors: int, cpus: float, commit_rows: int):
    from metaeol_integrations.distributed import RayEmbedConfig

    return RayEmbedConfig(num_actors=actors, num_cpus_per_actor=cpus, batch_size=commit_rows,
                          load_kwargs={"templates": templates, "model_kwargs": {"dtype": "float32"}})


def read_output(output: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = sorted(output.glob("part-*.parquet"))
    if not parts:
        return {}
    table = pa.concat_tables([pq.read_table(part) for part in parts])
    ids = table.column("id").to_pylist()
    assert len(ids) == len(set(ids)), "an id was committed twice"
    return dict(zip(ids, table.column("embedding").to_numpy(zero_copy_only=False)))


def run_ray(corpus: Path, output: Path, config) -> tuple[float, dict]:
    from metaeol_integrations.distributed import embed_files

    start = time.perf_counter()
    summary = embed_files(corpus, output, config)
    seconds = time.perf_counter() - start
    vectors = read_output(output)
    assert summary.rows_embedded + summary.rows_already_done == len(vectors)
    return seconds, vectors


def driver(corpus: str, output: str, templates: str, commit_rows: int) -> None:
    """The process the kill measurement kills: ray-2 with actors that log each batch they start."""
    import ray

    from metaeol_integrations.distributed import embed_files
    from metaeol_integrations.distributed.ray_embed import _EmbedActor

    class LoggingActor(_EmbedActor):  # defined in __main__, so Ray pickles it by value
        def __call__(self, batch):
            with open(Path(self.output_dir).parent / STARTED_LOG, "a") as log:
                log.write(f"{batch.num_rows}\n")
            return super().__call__(batch)

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    embed_files(corpus, output, ray_config(templates, 2, 0.5, commit_rows), actor_class=LoggingActor)


def measure_kill(corpus: Path, folder: Path, args, expected_seconds: float, total: int) -> dict:
    """Kill a driver at a random moment; rows committed, rows lost, and a re-run that completes the folder."""
    output = folder / "killed"
    process = subprocess.Popen(
        [sys.executable, __file__, "--driver", str(corpus), str(output), args.templates, str(args.commit_rows)],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    start = time.perf_counter()
    while not list(output.glob("part-*.parquet")):
        time.sleep(0.05)
    first_commit = time.perf_counter() - start
    delay = random.Random(args.seed).uniform(0, max(expected_seconds - first_commit, 1.0))
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = time.perf_counter() - start
    time.sleep(3)  # Ray's processes notice that their driver is gone
    committed = len(read_output(output))
    log = folder / STARTED_LOG
    started = sum(int(line) for line in log.read_text().split()) if log.exists() else 0
    rerun_seconds, vectors = run_ray(corpus, output, ray_config(args.templates, 2, 0.5, args.commit_rows))
    assert len(vectors) == total, "the re-run did not complete the folder"
    return {"killed_at_s": killed_at, "first_commit_s": first_commit, "rows_committed_at_kill": committed,
            "rows_started_at_kill": started, "rows_lost": started - committed,
            "most_rows_in_flight": 2 * args.commit_rows, "rerun_seconds": rerun_seconds,
            "rerun_rows": total - committed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="SentEval folder (default: METAEOL_SENTEVAL_DIR or ../shared/data/senteval)")
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--templates", default="prompteol", help="prompteol (default) or metaeol")
    parser.add_argument("--commit-rows", type=int, default=64, help="rows per committed file (Ray batch size)")
    parser.add_argument("--seed", type=int, default=0, help="sample and kill-moment seed")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--driver", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.driver:
        corpus, output, templates, commit_rows = args.driver
        driver(corpus, output, templates, int(commit_rows))
        return

    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray

    import metaeol_integrations

    texts = sample_sentences(args.data_dir, args.sentences, args.seed)
    rows: list[dict] = []

    start = time.perf_counter()
    model = metaeol_integrations.load(metaeol_integrations.DEFAULT_PRESET, templates=args.templates,
                                      model_kwargs={"dtype": "float32"})
    load_seconds = time.perf_counter() - start
    start = time.perf_counter()
    single = model.encode(texts, batch_size=16, convert_to_numpy=True)
    encode_seconds = time.perf_counter() - start
    single_total = load_seconds + encode_seconds
    rows.append({"config": "single", "actors": 0, "cpus_per_actor": None, "seconds": single_total,
                 "load_seconds": load_seconds, "encode_seconds": encode_seconds, "max_abs_diff": 0.0})
    del model

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        corpus = folder / "corpus.parquet"
        pq.write_table(pa.table({"id": list(range(len(texts))), "text": texts}), corpus, row_group_size=256)
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        try:
            for config_name, actors, cpus in (("ray-2", 2, 0.5),):
                config = ray_config(args.templates, actors, cpus, args.commit_rows)
                seconds, vectors = run_ray(corpus, folder / config_name, config)
                got = np.stack([vectors[i] for i in range(len(texts))])
                rows.append({"config": config_name, "actors": actors, "cpus_per_actor": cpus, "seconds": seconds,
                             "files": len(list((folder / config_name).glob("part-*.parquet"))),
                             "max_abs_diff": float(np.abs(got - single).max())})
            ray2_seconds = rows[-1]["seconds"]
            kill = measure_kill(corpus, folder, args, ray2_seconds, len(texts))
        finally:
            ray.shutdown()

    for row in rows:
        row["sentences_per_s"] = len(texts) / row["seconds"]
        row["time_vs_single"] = row["seconds"] / single_total
    result = {
        "model": metaeol_integrations.DEFAULT_PRESET, "templates": args.templates, "sentences": len(texts),
        "commit_rows": args.commit_rows, "source": f"MR (English), seed {args.seed}",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "ray": ray.__version__},
        "rows": rows, "kill": kill,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ray_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Ray Data overhead and the cost of a kill on one machine ({result['machine']['cpus']} CPUs, ray {ray.__version__})",
        "",
        f"{metaeol_integrations.DEFAULT_PRESET}, templates `{args.templates}`, {len(texts)} MR sentences "
        f"(seed {args.seed}), one committed parquet file per {args.commit_rows} rows, one run; times are end to end "
        "including model loading.",
        "",
        "| config | actors x CPUs | wall s | sentences/s | time / single | files | max abs diff vs single |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        pool = "-" if not row["actors"] else f"{row['actors']} x {row['cpus_per_actor']:g}"
        lines.append(f"| {row['config']} | {pool} | {row['seconds']:.1f} | {row['sentences_per_s']:.2f} | "
                     f"{row['time_vs_single']:.2f} | {row.get('files', '-')} | {row['max_abs_diff']:.1e} |")
    lines += [
        "", f"single: load {load_seconds:.1f} s + encode {encode_seconds:.1f} s.", "",
        "## SIGKILL of the driver (ray-2) at a random moment",
        "",
        f"- killed {kill['killed_at_s']:.1f} s after start (first commit at {kill['first_commit_s']:.1f} s)",
        f"- rows committed and kept: {kill['rows_committed_at_kill']} of {len(texts)}",
        f"- rows lost (in batches started but not committed): {kill['rows_lost']} "
        f"(at most {kill['most_rows_in_flight']}: 2 actors x {args.commit_rows} rows in flight)",
        f"- re-run embedded the other {kill['rerun_rows']} rows in {kill['rerun_seconds']:.1f} s; every id present "
        "exactly once",
    ]
    (out / "ray_overhead.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
