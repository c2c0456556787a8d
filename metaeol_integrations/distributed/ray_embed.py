"""Embed a Ray Dataset, or a parquet / JSONL path, with one MetaEOL model per Ray actor.

Output is parquet with two columns: the input's id and ``embedding`` (a fixed-size list of float32), readable by
pandas, pyarrow or any parquet reader without Ray.

``embed_files`` keeps its work: each actor commits every batch it finishes as its own parquet file, written under
a temporary name and atomically renamed to ``part-<digest of the batch's ids>.parquet``. So
1. a run killed at any moment (SIGINT/SIGTERM/SIGKILL of the driver, a lost node) keeps every finished batch;
2. a re-run reads the ids in committed files and embeds only the rest;
3. a batch that Ray retries (its actor died after writing) is renamed onto the same name, never committed twice;
4. temporary files of a killed run are never read as results and are removed by the next run.
This needs ids that are unique in the input (checked before any work) and an output folder on a filesystem with
atomic rename that every actor can write (local, or a shared POSIX mount on a multi-node cluster). Run one job per
output folder at a time.
"""

from __future__ import annotations

import hashlib
import os
import time
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

from metaeol_integrations.errors import ClusterResourcesError, InputIdError
from metaeol_integrations.presets import DEFAULT_PRESET

EMBEDDING_COLUMN = "embedding"
PART_PREFIX = "part-"
TEMP_PREFIX = "_tmp-"
STAGING_PREFIX = "_staging-"  # folders of runs by versions before per-batch commits; removed like temp files
COMMITTED_COLUMN = "committed_rows"


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
        batch_size: Rows per ``map_batches`` call, and so per committed file (the most a kill can lose per actor);
            ``encode_batch_size`` texts per forward batch inside it.
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
    """What a run of :func:`embed_files` did: rows in the input, embedded now, skipped (committed earlier)."""

    output_dir: Path
    rows_embedded: int
    rows_already_done: int
    files_written: int
    rows_total: int = 0
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows_embedded / self.seconds if self.seconds > 0 else 0.0


def part_name(ids: list[Any]) -> str:
    """The committed file name of a batch: a digest of its ids, so a retried batch lands on the same file."""
    digest = hashlib.sha256("\x1f".join(f"{type(i).__name__}:{i}" for i in ids).encode("utf-8")).hexdigest()
    return f"{PART_PREFIX}{digest[:32]}.parquet"


def commit_batch(table: pa.Table, output_dir: Path, id_column: str) -> Path:
    """Write ``table`` under a temporary name in ``output_dir``, then rename it atomically to its part name."""
    final = output_dir / part_name(table.column(id_column).to_pylist())
    temporary = output_dir / f"{TEMP_PREFIX}{uuid.uuid4().hex}.parquet"
    try:
        pq.write_table(table, temporary)
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)
    return final


class _EmbedActor:
    """One model per actor, loaded once; called on pyarrow batches. With ``output_dir`` it commits each batch
    itself and returns only the row count, so the vectors never pass through the driver."""

    def __init__(self, config: RayEmbedConfig, output_dir: str | None = None) -> None:
        import torch

        from metaeol_integrations.loading import load

        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.config = config
        self.output_dir = Path(output_dir) if output_dir else None
        self.model = load(config.model, device=device, **config.load_kwargs)

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = batch.column(self.config.text_column).to_pylist()
        vectors = self.model.encode(
            texts, batch_size=self.config.encode_batch_size, normalize_embeddings=self.config.normalize,
            convert_to_numpy=True, show_progress_bar=False,
        ).astype(np.float32)
        flat = pa.array(vectors.reshape(-1), type=pa.float32())
        embeddings = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
        table = pa.table({self.config.id_column: batch.column(self.config.id_column), EMBEDDING_COLUMN: embeddings})
        if self.output_dir is None:
            return table
        commit_batch(table, self.output_dir, self.config.id_column)
        return pa.table({COMMITTED_COLUMN: pa.array([table.num_rows], type=pa.int64())})


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


def embed_dataset(
    dataset: ray.data.Dataset, config: RayEmbedConfig = RayEmbedConfig(), *, commit_to: str | os.PathLike | None = None,
    actor_class: type = _EmbedActor,
) -> ray.data.Dataset:
    """A lazy Dataset of ``(id, embedding)`` rows for ``dataset``'s id and text columns.

    With ``commit_to`` each batch is committed as a parquet file in that folder by the actor that embedded it, and
    the Dataset holds one ``committed_rows`` count per batch instead (what :func:`embed_files` uses).
    ``actor_class`` (a subclass of the default) is for fault-injection tests.
    """
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
        actor_class,
        fn_constructor_kwargs={"config": config, "output_dir": str(commit_to) if commit_to else None},
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
    """Ids already committed (only the id column of ``part-*.parquet`` is read)."""
    parts = sorted(output_dir.glob(f"{PART_PREFIX}*.parquet"))
    if not parts:
        return pa.array([])
    return pa.concat_arrays([pq.read_table(part, columns=[id_column]).column(id_column).combine_chunks() for part in parts])


def input_ids(dataset: ray.data.Dataset, id_column: str) -> pa.Array:
    """Every id of the input, refusing missing, null and duplicate ids (before any embedding work)."""
    if id_column not in dataset.schema().names:
        raise InputIdError(
            f"The input has no id column {id_column!r} (it has {dataset.schema().names}). "
            "Fix: pass id_column= (CLI: --id-column)."
        )
    refs = dataset.select_columns([id_column]).to_arrow_refs()
    tables = [table for table in ray.get(refs) if table.num_rows]
    if not tables:
        return pa.array([])
    ids = pa.concat_arrays([t.column(id_column).combine_chunks() for t in tables])
    if ids.null_count:
        raise InputIdError(f"{ids.null_count} input row(s) have no {id_column!r}. Fix: give every row a unique id.")
    if pc.count_distinct(ids).as_py() != len(ids):
        counts = pc.value_counts(ids)
        repeated = counts.filter(pc.greater(counts.field("counts"), 1)).field("values").to_pylist()
        raise InputIdError(
            f"{len(repeated)} id(s) occur more than once in {id_column!r}, e.g. {repeated[:5]}; a re-run could not "
            "tell their rows apart. Fix: make the ids unique (e.g. add a row number)."
        )
    return ids


def _remove_leftovers(output: Path) -> None:
    """Temporary files and staging folders of killed runs: never results, safe to delete before a run."""
    import shutil

    for stale in output.glob(f"{TEMP_PREFIX}*"):
        stale.unlink(missing_ok=True)
    for stale in output.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)


def embed_files(
    input_path: str | os.PathLike, output_dir: str | os.PathLike, config: RayEmbedConfig = RayEmbedConfig(), *,
    show_progress: bool = False, actor_class: type = _EmbedActor,
) -> EmbedSummary:
    """Embed every row of ``input_path`` not yet committed in ``output_dir``, committing each batch as it finishes
    (module doc); a re-run continues where a killed run stopped. ``show_progress`` draws a bar of rows committed,
    rows/s and time left."""
    from tqdm.auto import tqdm

    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(output)

    dataset = read_input(input_path)
    ids = input_ids(dataset, config.id_column)
    done = committed_ids(output, config.id_column)
    skipped = (pc.sum(pc.is_in(ids, value_set=done)).as_py() or 0) if len(done) else 0
    if len(done):
        id_column = config.id_column
        dataset = dataset.map_batches(
            lambda table: table.filter(pc.invert(pc.is_in(table[id_column], value_set=done))),
            batch_format="pyarrow",
        )
    remaining = len(ids) - skipped
    start = time.perf_counter()
    embedded = files = 0
    if remaining:
        context = ray.data.DataContext.get_current()
        ray_bars = context.enable_progress_bars
        context.enable_progress_bars = ray_bars and not show_progress  # one bar on screen: ours
        try:
            counts = embed_dataset(dataset, config, commit_to=output, actor_class=actor_class)
            with tqdm(total=remaining, unit="rows", desc="committed", disable=not show_progress) as bar:
                for batch in counts.iter_batches(batch_size=None, batch_format="pyarrow"):
                    rows = batch.column(COMMITTED_COLUMN).to_pylist()
                    embedded, files = embedded + sum(rows), files + len(rows)
                    bar.update(sum(rows))
        finally:
            context.enable_progress_bars = ray_bars
    return EmbedSummary(output, embedded, skipped, files, rows_total=len(ids), seconds=time.perf_counter() - start)
