"""Sharing models: weightless export (offline, no loading), loading by hub id from a real hub-cache layout,
model cards, push_to_hub with a recording fake, and the refusals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

import metaeol_integrations
from metaeol_integrations import Recipe
from metaeol_integrations.cli.main import main
from metaeol_integrations.errors import WeightsModeError
from metaeol_integrations.sharing import write_reference_folder

BASE_ID = "metaeol-test/tiny-llama"
MAIN_COMMIT, OTHER_COMMIT = "1" * 40, "2" * 40
TEXTS = ["A man is playing a guitar.", "Someone plays an instrument.", "The stock market fell sharply."]


def _front_matter(readme: Path) -> dict:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def _snapshot(cache: Path, repo_id: str, commit: str, make_main: bool = True) -> Path:
    """A folder in huggingface_hub's cache layout: models--org--name/{refs/main, snapshots/<commit>/}."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    folder = repo / "snapshots" / commit
    folder.mkdir(parents=True)
    if make_main:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
    return folder


def test_weightless_export_of_a_hub_preset_writes_no_weights_and_fetches_nothing(tmp_path):
    out = tmp_path / "metaeol-llama2-7b"
    assert main(["export", "metaeol-llama2-7b", str(out)]) == 0  # reference is the default for a hub base
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "config_sentence_transformers.json", "metaeol_config.json", "modules.json"]
    config = json.loads((out / "metaeol_config.json").read_text())
    assert config["base_model"] == "meta-llama/Llama-2-7b-hf" and config["weights"] == "reference"
    assert len(config["templates"]["meta_tasks"]) == 4 and config["layer"] is None  # the set's own: -1
    meta = _front_matter(out / "README.md")
    assert meta["library_name"] == "sentence-transformers" and meta["pipeline_tag"] == "sentence-similarity"
    assert meta["base_model"] == "meta-llama/Llama-2-7b-hf" and "metaeol" in meta["tags"]
    card = (out / "README.md").read_text()
    for needle in ("SentenceTransformer(", "MetaEOLEmbeddings(", "MetaEOLEmbedding(", "@inproceedings{lei-etal-2024",
                   "`metaeol` (8 prompts", "**Output layer:** -1"):
        assert needle in card


def test_reference_config_equals_what_the_module_saves(tiny_model_dir, tmp_path):
    """The folder written without loading and the one MetaEOL.save writes hold the same settings."""
    model = metaeol_integrations.load(str(tiny_model_dir), templates="prompteol", layer=2, max_seq_length=300,
                                      token_prepending=(1, 3), contrastive={"layer": 1, "mode": "nr"})
    module = model[0]
    module.base_model = BASE_ID
    metaeol_integrations.save(model, tmp_path / "saved", weights="reference")
    assert not list((tmp_path / "saved").glob("*.safetensors"))
    assert module.weights == "copy"  # save(weights=...) does not change the model
    write_reference_folder(tmp_path / "written", BASE_ID, templates="prompteol", layer=2, max_seq_length=300,
                           token_prepending=(1, 3), contrastive={"layer": 1, "mode": "nr"})
    for name in ("metaeol_config.json", "modules.json"):
        assert json.loads((tmp_path / "saved" / name).read_text()) == json.loads((tmp_path / "written" / name).read_text())
    saved = json.loads((tmp_path / "saved" / "config_sentence_transformers.json").read_text())
    written = json.loads((tmp_path / "written" / "config_sentence_transformers.json").read_text())
    assert written == saved


def test_local_and_packaged_bases_cannot_be_referenced(tiny_model_dir, tmp_path, capsys):
    with pytest.raises(WeightsModeError, match="weights='copy'"):
        metaeol_integrations.export(str(tiny_model_dir), tmp_path / "x", weights="reference")
    assert main(["export", "metaeol-smollm2-135m", str(tmp_path / "y"), "--weights", "reference"]) == 2
    error = capsys.readouterr().err
    assert "--weights copy" in error and "Traceback" not in error
    assert not (tmp_path / "y").exists()
    model = metaeol_integrations.load(str(tiny_model_dir))
    with pytest.raises(WeightsModeError):
        model[0].weights = "reference"
    with pytest.raises(WeightsModeError):
        model[0].weights = "both"


@pytest.mark.slow
def test_copy_export_carries_a_model_card_rendered_at_save_time(tiny_model_dir, tmp_path):
    model = metaeol_integrations.load(str(tiny_model_dir))
    model[0].layer = 2  # e.g. tune-layer --export: the card must state the layer at save time
    metaeol_integrations.save(model, tmp_path / "copy")
    assert (tmp_path / "copy" / "model.safetensors").is_file()
    card = (tmp_path / "copy" / "README.md").read_text()
    assert "**Output layer:** 2" in card and "**Dimensions:** 64" in card
    assert _front_matter(tmp_path / "copy" / "README.md")["library_name"] == "sentence-transformers"
    reloaded = metaeol_integrations.load(str(tmp_path / "copy"))
    np.testing.assert_allclose(reloaded.encode(TEXTS), model.encode(TEXTS), atol=1e-6)


def test_push_to_hub_uploads_a_loadable_folder(tiny_model_dir, tmp_path, monkeypatch):
    import sentence_transformers.base.model as st_model
    from huggingface_hub import CommitInfo, HfApi, RepoUrl

    uploaded = {}

    def create_repo(self, repo_id, **kwargs):
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, repo_id, folder_path, **kwargs):
        uploaded[repo_id] = shutil.copytree(folder_path, tmp_path / "pushed" / repo_id.replace("/", "--"))
        return CommitInfo(commit_url=f"https://huggingface.co/{repo_id}/commit/{'0' * 40}", commit_message="",
                          commit_description="", oid="0" * 40)

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    real_load_file_path = st_model.load_file_path

    def load_file_path(name, filename, **kwargs):  # the new repo has no README yet; everything else as usual
        return None if filename == "README.md" and name == "someone/metaeol-tiny" else real_load_file_path(
            name, filename, **kwargs)

    monkeypatch.setattr(st_model, "load_file_path", load_file_path)
    model = metaeol_integrations.load(str(tiny_model_dir))
    model.push_to_hub("someone/metaeol-tiny")
    folder = uploaded["someone/metaeol-tiny"]
    card = (folder / "README.md").read_text()
    assert 'SentenceTransformer("someone/metaeol-tiny", trust_remote_code=True)' in card
    from sentence_transformers import SentenceTransformer

    pushed = SentenceTransformer(str(folder), trust_remote_code=True)
    np.testing.assert_allclose(pushed.encode(TEXTS), model.encode(TEXTS), atol=1e-6)


HUB_SCRIPT = textwrap.dedent("""
    import json, shutil, sys
    from pathlib import Path
    import numpy as np
    import metaeol_integrations as mi
    from sentence_transformers import SentenceTransformer

    texts, other = json.loads(sys.argv[1]), sys.argv[2]
    result = {
        "st_by_id": SentenceTransformer("metaeol-test/metaeol-tiny", trust_remote_code=True).encode(texts),
        "load_by_id": mi.load("metaeol-test/metaeol-tiny").encode(texts),
        "base_by_id": mi.load("metaeol-test/tiny-llama").encode(texts),
        "pinned": mi.load("metaeol-test/metaeol-tiny-pinned").encode(texts),
        "base_at_revision": mi.load("metaeol-test/tiny-llama", revision=other).encode(texts),
    }
    # push_to_hub of a model loaded by id (weightless by default) with a recording fake, then load the folder.
    from huggingface_hub import CommitInfo, HfApi, RepoUrl
    import sentence_transformers.base.model as st_model
    pushed = Path(sys.argv[3])
    HfApi.create_repo = lambda self, repo_id, **kw: RepoUrl("https://huggingface.co/" + repo_id)
    HfApi.upload_folder = lambda self, repo_id, folder_path, **kw: (shutil.copytree(folder_path, pushed), CommitInfo(
        commit_url="https://huggingface.co/someone/weightless/commit/" + "0" * 40, commit_message="", commit_description="",
        oid="0" * 40))[1]
    real = st_model.load_file_path
    st_model.load_file_path = lambda name, filename, **k: None if name == "someone/weightless" else real(name, filename, **k)
    mi.load("metaeol-test/metaeol-tiny").push_to_hub("someone/weightless")
    result["pushed"] = SentenceTransformer(str(pushed), trust_remote_code=True).encode(texts)
    print(json.dumps({key: np.asarray(value).tolist() for key, value in result.items()}))
""")


@pytest.mark.slow
def test_shared_model_loads_by_id_from_the_hub_cache(tiny_model_dir, tiny, tmp_path):
    """A weightless MetaEOL repo and its base in a hub cache (huggingface_hub's layout), offline: loading the
    MetaEOL repo by id equals loading the base by id; a pinned base revision is honoured."""
    from safetensors.torch import load_file, save_file

    cache = tmp_path / "hub"
    main_snapshot = _snapshot(cache, BASE_ID, MAIN_COMMIT)
    other_snapshot = _snapshot(cache, BASE_ID, OTHER_COMMIT, make_main=False)
    for item in tiny_model_dir.iterdir():
        shutil.copy(item, main_snapshot / item.name)
        shutil.copy(item, other_snapshot / item.name)
    weights = load_file(str(main_snapshot / "model.safetensors"))
    weights = {name: tensor * 1.5 if "embed_tokens" in name else tensor for name, tensor in weights.items()}
    save_file(weights, str(other_snapshot / "model.safetensors"), metadata={"format": "pt"})
    write_reference_folder(_snapshot(cache, "metaeol-test/metaeol-tiny", "3" * 40), BASE_ID)
    write_reference_folder(_snapshot(cache, "metaeol-test/metaeol-tiny-pinned", "4" * 40), BASE_ID,
                           revision=OTHER_COMMIT)

    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", HUB_SCRIPT, json.dumps(TEXTS), OTHER_COMMIT, str(tmp_path / "pushed")],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    vectors = {key: np.asarray(value) for key, value in json.loads(done.stdout.strip().splitlines()[-1]).items()}
    np.testing.assert_allclose(vectors["base_by_id"], tiny.encode(TEXTS), atol=1e-5)  # the cache served the base
    for key in ("st_by_id", "load_by_id", "pushed"):
        np.testing.assert_allclose(vectors[key], vectors["base_by_id"], atol=1e-5)
    np.testing.assert_allclose(vectors["pinned"], vectors["base_at_revision"], atol=1e-5)
    assert np.abs(vectors["pinned"] - vectors["base_by_id"]).max() > 1e-2
    assert not list((tmp_path / "pushed").glob("*.safetensors"))
    assert json.loads((tmp_path / "pushed" / "metaeol_config.json").read_text())["weights"] == "reference"


RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def _average(name: str, kind: str = "sts") -> float:
    """The average score of one kind of task in a `metaeol eval` result file of docs/results."""
    scores = [r["score"] for r in json.loads((RESULTS / name).read_text())["results"] if r["kind"] == kind]
    return sum(scores) / len(scores)


@pytest.mark.slow
def test_preset_card_states_the_numbers_measured_in_docs_results(tmp_path):
    """The SmolLM2 preset's card text against the result files it quotes, then in a real export's README."""
    from metaeol_integrations.presets import PRESETS

    measured = PRESETS["metaeol-smollm2-135m"].measured
    metaeol = "smollm2-135m-MetaEOL-last-layer-all.json"
    assert f"Spearman {_average(metaeol):.2f}" in measured
    assert f"accuracy {_average(metaeol, 'transfer'):.2f}" in measured
    assert f"({_average('smollm2-135m-MetaEOL-tuned-layer-28-all.json'):.2f} with" in measured
    assert f"STS-B test {_average('smollm2-135m-MetaEOL-last-layer-STS-B-full-sts.json'):.2f}" in measured
    assert f"scores {_average('all-MiniLM-L6-v2-trained-encoder-all.json'):.2f}" in measured
    assert f"PromptEOL on this model {_average('smollm2-135m-PromptEOL-last-layer-all.json'):.2f}" in measured

    metaeol_integrations.export("metaeol-smollm2-135m", tmp_path / "smol")  # packaged GGUF: weights copied
    assert (tmp_path / "smol" / "model.safetensors").is_file()
    assert measured.split(":")[0] in (tmp_path / "smol" / "README.md").read_text()
    assert _front_matter(tmp_path / "smol" / "README.md")["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.mark.parametrize("name, model", [("metaeol-plus-smollm2-135m", "smollm2-135m"),
                                         ("metaeol-plus-gemma3-270m", "gemma3-270m")])
def test_best_recipe_presets_are_their_dev_choice(name, model):
    """A metaeol-plus preset's settings are the recipe that scored best on STS-B dev (the recipe tuning's record in
    docs/results), and its card quotes that dev score."""
    from metaeol_integrations.presets import PRESETS

    preset = PRESETS[name]
    recipes = json.loads((RESULTS / f"{model}-recipes-tune-recipe.json").read_text())
    best = recipes["candidates"][int(np.nanargmax(recipes["scores"]))]
    chosen = {key: value for key, value in best.items() if key != "label" and value is not None}
    assert preset.recipe == Recipe.from_options(chosen)
    assert f"Spearman {max(recipes['scores']):.2f})" in preset.measured


def test_gemma3_best_recipe_preset_quotes_its_measured_numbers():
    """metaeol-plus-gemma3-270m's card numbers are those of its recipe's test row and of the paired comparison
    with MetaEOL on the same pairs (docs/results/gemma3-270m-methods-tables-pairs.json)."""
    from metaeol_integrations.presets import PRESETS

    preset = PRESETS["metaeol-plus-gemma3-270m"]
    assert preset.recipe == Recipe(templates="prompteol", token_prepending=(1, 5))
    assert f"Spearman {_average('gemma3-270m-PromptEOL-TP-sts.json'):.2f} at 250" in preset.measured
    assert f"MetaEOL on this model: {_average('gemma3-270m-MetaEOL-last-layer-sts.json'):.2f}" in preset.measured
    assert f"Token Prepending: {_average('gemma3-270m-PromptEOL-last-layer-sts.json'):.2f}" in preset.measured
    comparison = [c for c in json.loads((RESULTS / "gemma3-270m-methods-tables-pairs.json").read_text())
                  if c["label_a"] == "gemma3-270m PromptEOL + TP"
                  and c["label_b"] == "gemma3-270m MetaEOL last layer"][0]["average"]
    assert (f"{comparison['difference']:+.2f}, 95% CI [{comparison['ci_low']:+.2f}, {comparison['ci_high']:+.2f}]"
            in preset.measured)


def test_smollm2_best_recipe_preset_quotes_its_measured_numbers():
    """metaeol-plus-smollm2-135m: its layer is also tune-layer's, and its card numbers are those of the test runs of
    that recipe."""
    from metaeol_integrations.presets import PRESETS

    preset = PRESETS["metaeol-plus-smollm2-135m"]
    assert preset.recipe.layer == json.loads((RESULTS / "smollm2-135m-MetaEOL-tune-layer.json").read_text())[
        "best_layer"]
    tuned = f"smollm2-135m-MetaEOL-tuned-layer-{preset.recipe.layer}"
    assert f"Spearman {_average(tuned + '-all.json'):.2f} at 500" in preset.measured
    assert f"last layer: {_average('smollm2-135m-MetaEOL-last-layer-all.json'):.2f}" in preset.measured
    assert f"STS-B test {_average(tuned + '-STS-B-full-sts.json'):.2f}" in preset.measured
    assert f"accuracy {_average(tuned + '-all.json', 'transfer'):.2f}" in preset.measured
    comparison = [c for c in json.loads((RESULTS / "paired-comparisons.json").read_text())
                  if {c["label_a"], c["label_b"]} == {"smollm2-135m MetaEOL last layer",
                                                      f"smollm2-135m MetaEOL tuned layer {preset.recipe.layer}"}][0]
    sign = 1 if comparison["label_a"].endswith(f"layer {preset.recipe.layer}") else -1
    low, high = sorted(sign * comparison["average"][key] for key in ("ci_low", "ci_high"))
    assert f"{sign * comparison['average']['difference']:+.2f}, 95% CI [{low:+.2f}, {high:+.2f}]" in preset.measured


@pytest.mark.slow
def test_best_recipe_preset_loads_as_its_settings():
    plus = metaeol_integrations.load("metaeol-plus-smollm2-135m")
    assert plus[0].layer == 28 and plus[0].token_prepending is None and plus[0].contrastive is None
    texts = ["A man is playing a guitar.", "Stocks fell."]
    np.testing.assert_allclose(plus.encode(texts),
                               metaeol_integrations.load("metaeol-smollm2-135m", layer=28).encode(texts), atol=1e-6)
