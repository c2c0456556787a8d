"""Embed a Ray Dataset, or a parquet / JSONL path, with one MetaEOL model per Ray actor.

Output is parquet with two columns: the input's id and ``embedding`` (a fixed-size list of float32), readable by
pandas, pyarrow or any parquet reader without Ray.

Re-running after a failure neither duplicates nor loses rows (``embed_files``):
1. the job writes into a fresh staging folder inside the output folder;
2. only when the whole write has succeeded are its files renamed, one by one and atomically, to ``part-*.parquet``;
3. a run first deletes staging folders left by failed runs (so run one job per output folder at a time), reads the
   ids already in committed parts and embeds only the other rows.
A row is therefore in exactly one committed file or in none, and a rerun fills in exactly the missing ones. This
needs ids that are unique in the input and an output folder on a filesystem with atomic rename (local or a shared
POSIX mount on a multi-node cluster).
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metaeol_integrations._extras import missing_extra

try:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import ray
    import ray.data
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise missing_extra("ray", "ray[data]") from error

from metaeol_integrations.errors import ClusterResourcesError
from metaeol_integrations.presets import DEFAULT_PRESET

EMBEDDING_COLUMN = "embedding"
STAGING_PREFIX = "_staging-"


@dataclass(frozen=True)
class RayEmbedConfig:
    """What to embed with and how to spread it over the cluster.

    Args:
        model: Anything :func:`metaeol_integrations.load` accepts; every actor loads it (a folder must be readable
            on every node).
        load_kwargs: Extra keywords for ``load`` (``layer``, ``templates``, ``model_kwargs``...).
        text_column / id_column: Input columns; ids are copied to the output to join vectors back.
        num_actors: Models running in parallel (one per actor).
        num_gpus_per_actor: GPUs per actor; ``None`` means 1 when the cluster has GPUs, else 0 (CPU).
        num_cpus_per_actor: CPUs each actor reserves (Ray Data's default is 1, GPU actors included). The actors
            must leave at least one CPU free for reading and writing, or Ray Data waits forever
            (:class:`~metaeol_integrations.errors.ClusterResourcesError` is raised instead).
        batch_size: Rows per ``map_batches`` call; ``encode_batch_size`` texts per forward batch inside it.
        normalize: L2-normalise the vectors.
    """

    model: str = DEFAULT_PRESET
    load_kwargs: dict[str, Any] = field(default_factory=dict)
    text_column: str = "text"
    id_column: str = "id"
    num_actors: int = 1
    num_gpus_per_actor: float | None = None
    num_cpus_per_actor: float = 1.0
    batch_size: int = 256
    encode_batch_size: int = 16
    normalize: bool = False


@dataclass(frozen=True)
class EmbedSummary:
    """What a run of :func:`embed_files` did."""

    output_dir: Path
    rows_embedded: int
    rows_already_done: int
    files_written: int


class _EmbedActor:
    """One model per actor, loaded once; called on pyarrow batches."""

    def __init__(self, config: RayEmbedConfig) -> None:
        import torch

        from metaeol_integrations.loading import load

        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.config = config
        self.model = load(config.model, device=device, **config.load_kwargs)

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = batch.column(self.config.text_column).to_pylist()
        vectors = self.model.encode(
            texts, batch_size=self.config.encode_batch_size, normalize_embeddings=self.config.normalize,
            convert_to_numpy=True, show_progress_bar=False,
        ).astype(np.float32)
        flat = pa.array(vectors.reshape(-1), type=pa.float32())
        embeddings = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
        return pa.table({self.config.id_column: batch.column(self.config.id_column), EMBEDDING_COLUMN: embeddings})


def _gpus_per_actor(config: RayEmbedConfig) -> float:
    if config.num_gpus_per_actor is not None:
        return config.num_gpus_per_actor
    return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0


def check_cluster_fits(config: RayEmbedConfig) -> None:
    """Refuse an actor pool that would hold every CPU of the cluster as it is now.

    Ray Data starts the actors first; when they hold every CPU, no read or write task can run and the job waits
    forever without an error (ray-project/ray#44687).
    """
    if config.num_actors < 1:
        raise ClusterResourcesError(f"num_actors must be at least 1, not {config.num_actors}. Fix: num_actors=1.")
    total = ray.cluster_resources().get("CPU", 0.0)
    reserved = config.num_actors * config.num_cpus_per_actor
    if reserved > 0 and reserved > total - 1:
        most = int((total - 1) // config.num_cpus_per_actor) if total > 1 else 0
        raise ClusterResourcesError(
            f"{config.num_actors} actor(s) x {config.num_cpus_per_actor:g} CPU would hold {reserved:g} of the "
            f"cluster's {total:g} CPUs, leaving less than one for reading and writing, so Ray Data would wait "
            f"forever. Fix: num_actors <= {most} (CLI --num-actors), or a smaller num_cpus_per_actor "
            "(--cpus-per-actor, e.g. 0.5)."
        )


def embed_dataset(dataset: ray.data.Dataset, config: RayEmbedConfig = RayEmbedConfig()) -> ray.data.Dataset:
    """A lazy Dataset of ``(id, embedding)`` rows for ``dataset``'s id and text columns."""
    missing = {config.id_column, config.text_column} - set(dataset.schema().names)
    if missing:
        raise ValueError(
            f"The input has no column(s) {sorted(missing)} (it has {dataset.schema().names}). "
            "Fix: pass text_column= / id_column= (CLI: --text-column / --id-column)."
        )
    check_cluster_fits(config)
    resources: dict[str, float] = {"num_gpus": _gpus_per_actor(config)}
    if config.num_cpus_per_actor != 1.0:
        # Only when it differs from Ray's default: Ray warns about GPU actors that set num_cpus explicitly.
        resources["num_cpus"] = config.num_cpus_per_actor
    # Ray hands an actor whole blocks, and one parquet file or JSONL file is often a single block: without
    # smaller blocks one actor would embed the whole file while the others wait.
    blocks = dataset.repartition(target_num_rows_per_block=config.batch_size)
    return blocks.map_batches(
        _EmbedActor,
        fn_constructor_kwargs={"config": config},
        batch_size=config.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=config.num_actors),
        **resources,
    )


def read_input(path: str | os.PathLike) -> ray.data.Dataset:
    """A Dataset from a parquet file or folder, or a JSONL file (``.jsonl`` / ``.json``, one object per line)."""
    path = str(path)
    if path.endswith((".jsonl", ".json")):
        return ray.data.read_json(path, lines=True)
    return ray.data.read_parquet(path)


def committed_ids(output_dir: Path, id_column: str) -> pa.Array:
    """Ids already written by finished runs (only the id column is read)."""
    parts = sorted(output_dir.glob("part-*.parquet"))
    if not parts:
        return pa.array([])
    return pa.concat_arrays([pq.read_table(part, columns=[id_column]).column(id_column).combine_chunks() for part in parts])


def embed_files(
    input_path: str | os.PathLike, output_dir: str | os.PathLike, config: RayEmbedConfig = RayEmbedConfig()
) -> EmbedSummary:
    """Embed every row of ``input_path`` not yet in ``output_dir``; safe to re-run after a failure (module doc)."""
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    for stale in output.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)  # an earlier run failed before committing these

    done = committed_ids(output, config.id_column)
    dataset = read_input(input_path)
    if len(done):
        id_column = config.id_column
        dataset = dataset.map_batches(
            lambda table: table.filter(pc.invert(pc.is_in(table[id_column], value_set=done))),
            batch_format="pyarrow",
        )
    staging = output / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    embed_dataset(dataset, config).write_parquet(str(staging))

    run = uuid.uuid4().hex[:12]
    files, rows = sorted(staging.glob("*.parquet")), 0
    for index, part in enumerate(files):
        rows += pq.read_metadata(part).num_rows
        os.replace(part, output / f"part-{run}-{index:05d}.parquet")
    shutil.rmtree(staging, ignore_errors=True)
    return EmbedSummary(output, rows, len(done), len(files))
