"""Ray Data scale-out on a local Ray instance started by the test (loopback only) with the tiny model."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray", reason="needs the ray extra: pip install \"metaeol-integrations[ray]\"")

from metaeol_integrations import ClusterResourcesError, InputIdError  # noqa: E402
from metaeol_integrations.cli.main import main  # noqa: E402
from metaeol_integrations.distributed import RayEmbedConfig, embed_dataset, embed_files  # noqa: E402

# Ray's driver talks to its local processes over loopback TCP; Ray clusters and subprocesses are the slow lane.
pytestmark = [pytest.mark.enable_socket, pytest.mark.slow]

TEXTS = [f"Sentence number {i} is about {'cats' if i % 2 else 'the stock market'}." for i in range(40)] + ["", "Why?"]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "corpus.parquet"
    pq.write_table(pa.table({"doc_id": [f"d{i}" for i in range(len(TEXTS))], "body": TEXTS}), path, row_group_size=7)
    return path


def _config(tiny_model_dir, **overrides):
    return RayEmbedConfig(**{"model": str(tiny_model_dir), "text_column": "body", "id_column": "doc_id",
                             "batch_size": 8, **overrides})


def _read(output):
    tables = [pq.read_table(p) for p in sorted(output.glob("part-*.parquet"))]
    merged = pa.concat_tables(tables)
    return merged.column("doc_id").to_pylist(), np.stack(merged.column("embedding").to_numpy(zero_copy_only=False))


def _check_every_row_once(output, tiny, texts):
    ids, vectors = _read(output)
    assert sorted(ids) == sorted(f"d{i}" for i in range(len(texts))) and len(set(ids)) == len(ids)
    expected = tiny.encode(texts, convert_to_numpy=True)
    np.testing.assert_allclose(vectors, expected[[int(i[1:]) for i in ids]], rtol=1e-5, atol=1e-5)


def test_every_row_once_with_single_process_vectors_and_reruns_fill_in_lost_batches(
    local_ray, tiny, tiny_model_dir, corpus, tmp_path
):
    output = tmp_path / "out"
    # A pool of two models; at half a CPU each they leave one of the two CPUs for reading and writing.
    summary = embed_files(corpus, output, _config(tiny_model_dir, num_actors=2, num_cpus_per_actor=0.5))
    assert summary.rows_embedded == summary.rows_total == len(TEXTS) and summary.rows_already_done == 0
    parts = sorted(output.glob("part-*.parquet"))
    assert summary.files_written == len(parts) == -(-len(TEXTS) // 8)  # one committed file per batch
    _check_every_row_once(output, tiny, TEXTS)

    # As if a run had been killed: two batches never committed, a temporary file and an old staging folder left.
    lost = sum(pq.read_metadata(part).num_rows for part in parts[:2])
    for part in parts[:2]:
        part.unlink()
    pq.write_table(pq.read_table(parts[2]), output / "_tmp-dead.parquet")
    (output / "_staging-dead").mkdir()

    summary = embed_files(corpus, output, _config(tiny_model_dir))
    assert summary.rows_embedded == lost and summary.rows_already_done == len(TEXTS) - lost
    assert not list(output.glob("_tmp-*")) and not list(output.glob("_staging-*"))
    _check_every_row_once(output, tiny, TEXTS)
    again = embed_files(corpus, output, _config(tiny_model_dir))
    assert again.rows_embedded == 0 and again.files_written == 0 and again.rows_already_done == len(TEXTS)


KILLED_DRIVER = """
import sys, ray
from metaeol_integrations.distributed import RayEmbedConfig, embed_files
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
embed_files(sys.argv[1], sys.argv[2], RayEmbedConfig(model=sys.argv[3], text_column="body", id_column="doc_id",
                                                     batch_size=4))
"""


def test_sigkill_of_the_driver_keeps_finished_batches_and_a_rerun_does_exactly_the_rest(
    local_ray, tiny, tiny_model_dir, tmp_path
):
    texts = [f"Sentence {i}: {'a cat sat on the mat' if i % 3 else 'markets fell'} {i * 7}." for i in range(600)]
    corpus = tmp_path / "big.parquet"
    pq.write_table(pa.table({"doc_id": [f"d{i}" for i in range(len(texts))], "body": texts}), corpus)
    output = tmp_path / "out"
    driver = subprocess.Popen([sys.executable, "-c", KILLED_DRIVER, str(corpus), str(output), str(tiny_model_dir)],
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(list(output.glob("part-*.parquet"))) < 3:
        assert driver.poll() is None, "the driver ended before it was killed"
        assert time.monotonic() < deadline, "no batch committed within 5 minutes"
        time.sleep(0.02)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and everything in its process group, mid-run
    driver.wait()
    time.sleep(2)  # let Ray's own processes notice their driver is gone

    kept = len(_read(output)[0])
    assert 0 < kept < len(texts)
    summary = embed_files(corpus, output, _config(tiny_model_dir, batch_size=64))
    assert summary.rows_already_done == kept and summary.rows_embedded == len(texts) - kept
    _check_every_row_once(output, tiny, texts)


def test_an_actor_that_dies_mid_batch_is_restarted_and_every_row_committed_once(
    local_ray, tiny, tiny_model_dir, corpus, tmp_path
):
    import tests.ray_fault_injection as faults

    ray.cloudpickle.register_pickle_by_value(faults)
    output = tmp_path / "out"
    summary = embed_files(corpus, output, _config(tiny_model_dir), actor_class=faults.DieOnceActor)
    assert (tmp_path / "actor-died-once").exists()  # the fault happened
    assert summary.rows_embedded == len(TEXTS)
    _check_every_row_once(output, tiny, TEXTS)


def test_duplicate_or_missing_ids_are_refused_before_any_work(local_ray, tiny_model_dir, tmp_path):
    corpus = tmp_path / "dup.parquet"
    pq.write_table(pa.table({"doc_id": ["a", "b", "a", "c", "c"], "body": ["x"] * 5}), corpus)
    with pytest.raises(InputIdError, match=r"2 id\(s\) occur more than once.*'a', 'c'"):
        embed_files(corpus, tmp_path / "out", _config(tiny_model_dir))
    assert not list((tmp_path / "out").iterdir())
    with pytest.raises(InputIdError, match="no id column 'id'"):
        embed_files(corpus, tmp_path / "out", RayEmbedConfig(model=str(tiny_model_dir), text_column="body"))


def test_embed_dataset_takes_a_ray_dataset_and_checks_columns(local_ray, tiny, tiny_model_dir):
    dataset = ray.data.from_items([{"doc_id": i, "body": text} for i, text in enumerate(TEXTS[:6])])
    rows = embed_dataset(dataset, _config(tiny_model_dir, normalize=True)).take_all()
    vectors = np.stack([row["embedding"] for row in sorted(rows, key=lambda row: row["doc_id"])])
    np.testing.assert_allclose(vectors, tiny.encode(TEXTS[:6], normalize_embeddings=True), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="Fix: pass text_column="):
        embed_dataset(dataset, RayEmbedConfig(model=str(tiny_model_dir)))


def test_an_actor_pool_holding_every_cpu_is_refused_instead_of_hanging(
    local_ray, tiny_model_dir, corpus, tmp_path, capsys
):
    # On the test's 2-CPU instance, two 1-CPU actors would leave no CPU for the read tasks (ray-project/ray#44687).
    with pytest.raises(ClusterResourcesError, match=r"Fix: num_actors <= 1"):
        embed_files(corpus, tmp_path / "out", _config(tiny_model_dir, num_actors=2))
    assert not list((tmp_path / "out").glob("*"))
    with pytest.raises(ClusterResourcesError, match="at least 1"):
        embed_files(corpus, tmp_path / "out", _config(tiny_model_dir, num_actors=0))
    code = main(["encode", "--ray", "--file", str(corpus), "-o", str(tmp_path / "cli"), "--model", str(tiny_model_dir),
                 "--num-actors", "3", "--text-column", "body", "--id-column", "doc_id"], out=io.StringIO())
    assert code == 2 and "ClusterResourcesError" in capsys.readouterr().err


def test_cli_encode_ray_reads_jsonl(local_ray, tiny, tiny_model_dir, tmp_path):
    source = tmp_path / "corpus.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS[:10])))
    out = io.StringIO()
    assert main(["encode", "--ray", "--file", str(source), "-o", str(tmp_path / "vectors"),
                 "--model", str(tiny_model_dir), "-q"], out=out) == 0
    assert "embedded 10 rows" in out.getvalue() and "10 of 10 done" in out.getvalue()
    out = io.StringIO()
    assert main(["encode", "--ray", "--file", str(source), "-o", str(tmp_path / "vectors"),
                 "--model", str(tiny_model_dir)], out=out) == 0
    assert "embedded 0 rows" in out.getvalue() and "skipped 10 rows" in out.getvalue()
    table = pa.concat_tables([pq.read_table(p) for p in (tmp_path / "vectors").glob("part-*.parquet")])
    ids = table.column("id").to_pylist()
    vectors = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
    np.testing.assert_allclose(vectors, tiny.encode([TEXTS[i] for i in ids]), rtol=1e-5, atol=1e-5)
