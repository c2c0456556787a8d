"""Ray Data scale-out on a local Ray instance started by the test (loopback only) with the tiny model."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray", reason="needs the ray extra: pip install \"metaeol-integrations[ray]\"")

from metaeol_integrations import ClusterResourcesError  # noqa: E402
from metaeol_integrations.cli.main import main  # noqa: E402
from metaeol_integrations.distributed import RayEmbedConfig, embed_dataset, embed_files  # noqa: E402

pytestmark = pytest.mark.enable_socket  # Ray's driver talks to its local processes over loopback TCP

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
    return RayEmbedConfig(model=str(tiny_model_dir), text_column="body", id_column="doc_id", batch_size=8,
                          **overrides)


def _read(output):
    tables = [pq.read_table(p) for p in sorted(output.glob("part-*.parquet"))]
    merged = pa.concat_tables(tables)
    return merged.column("doc_id").to_pylist(), np.stack(merged.column("embedding").to_numpy(zero_copy_only=False))


def test_every_row_once_with_single_process_vectors_and_reruns_repair_failures(
    local_ray, tiny, tiny_model_dir, corpus, tmp_path
):
    output = tmp_path / "out"
    # A pool of two models; at half a CPU each they leave one of the two CPUs for reading and writing.
    summary = embed_files(corpus, output, _config(tiny_model_dir, num_actors=2, num_cpus_per_actor=0.5))
    ids, vectors = _read(output)
    assert summary.rows_embedded == len(TEXTS) and summary.rows_already_done == 0
    assert sorted(ids) == sorted(f"d{i}" for i in range(len(TEXTS))) and len(set(ids)) == len(ids)
    expected = tiny.encode(TEXTS, convert_to_numpy=True)
    np.testing.assert_allclose(vectors, expected[[int(i[1:]) for i in ids]], rtol=1e-5, atol=1e-5)

    # As if a run had died: some rows never committed, and a staging folder left behind.
    part = sorted(output.glob("part-*.parquet"))[0]
    table = pq.read_table(part)
    lost = table.column("doc_id").to_pylist()[::3]
    pq.write_table(table.filter(pc.invert(pc.is_in(table.column("doc_id"), value_set=pa.array(lost)))), part)
    (output / "_staging-dead").mkdir()
    pq.write_table(table, output / "_staging-dead" / "half.parquet")

    summary = embed_files(corpus, output, _config(tiny_model_dir))
    assert summary.rows_embedded == len(lost) and summary.rows_already_done == len(TEXTS) - len(lost)
    assert not list(output.glob("_staging-*"))
    ids, vectors = _read(output)
    assert sorted(ids) == sorted(f"d{i}" for i in range(len(TEXTS))) and len(set(ids)) == len(ids)
    np.testing.assert_allclose(vectors, expected[[int(i[1:]) for i in ids]], rtol=1e-5, atol=1e-5)
    again = embed_files(corpus, output, _config(tiny_model_dir))
    assert again.rows_embedded == 0 and again.files_written == 0


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
                 "--model", str(tiny_model_dir)], out=out) == 0
    assert "embedded 10 rows" in out.getvalue()
    table = pa.concat_tables([pq.read_table(p) for p in (tmp_path / "vectors").glob("part-*.parquet")])
    ids = table.column("id").to_pylist()
    vectors = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
    np.testing.assert_allclose(vectors, tiny.encode([TEXTS[i] for i in ids]), rtol=1e-5, atol=1e-5)
