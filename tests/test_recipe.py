"""The one options type (core/recipe.py), the CLI flags made from it, and the import layering of core/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from metaeol_integrations import Recipe
from metaeol_integrations.cli.main import build_parser
from metaeol_integrations.cli.options import recipe_options
from metaeol_integrations.core.contrastive import ContrastivePrompting
from metaeol_integrations.core.templates import PROMPTEOL_TEMPLATES
from metaeol_integrations.core.token_prepending import TokenPrepending
from metaeol_integrations.errors import LayerError, QuantizationError, TemplateError

PACKAGE = Path(__file__).resolve().parents[1] / "metaeol_integrations"


def test_defaults_are_the_paper_and_change_nothing():
    recipe = Recipe()
    assert recipe.templates.name == "metaeol" and len(recipe.templates) == 8
    assert recipe.layer is None and recipe.max_seq_length == 512 and recipe.prefix_cache
    assert recipe.changed_options() == {}
    assert recipe.effective_layer == -1


def test_options_are_coerced_and_round_trip_through_the_saved_form():
    recipe = Recipe.from_options(templates="prompteol", task_templates={"query": "ke"}, layer=[10, 20],
                                 token_prepending=True, contrastive={"layer": 2, "mode": "nr"}, chunk_tokens=32,
                                 quantize="int8", max_tokens_per_forward=1024, prefix_cache=False)
    assert recipe.templates == PROMPTEOL_TEMPLATES and recipe.layer == (10, 20)
    assert recipe.token_prepending == TokenPrepending(1, 7)
    assert recipe.contrastive == ContrastivePrompting(layer=2, mode="nr")
    config = recipe.to_config()
    assert config["layer"] == [10, 20] and config["token_prepending"] == [1, 7]
    assert config["contrastive"]["mode"] == "nr" and config["task_templates"]["query"]["name"] == "ke"
    assert Recipe.from_config(config) == recipe
    assert Recipe.from_config({**config, "base_model": "x", "weights": "copy"}) == recipe  # other keys ignored


def test_with_overrides_keeps_what_is_none_and_replace_sets_it():
    recipe = Recipe(layer=28, chunk_tokens=16)
    assert recipe.with_overrides(layer=None, templates="ke").layer == 28
    assert recipe.with_overrides(layer=None, templates="ke").templates.name == "ke"
    assert recipe.replace(layer=None).layer is None
    assert recipe.with_overrides(token_prepending=False).token_prepending is None  # False: off


@pytest.mark.parametrize("options, error", [
    ({"layer": "last"}, LayerError),
    ({"layer": []}, LayerError),
    ({"templates": "no-such-set"}, TemplateError),
    ({"chunk_tokens": 0}, ValueError),
    ({"max_seq_length": True}, ValueError),
    ({"max_tokens_per_forward": -5}, ValueError),
    ({"quantize": "int4"}, QuantizationError),
    ({"token_prepending": "yes"}, LayerError),
    ({"contrastive": {"layer": 2, "mode": "xx"}}, LayerError),
    ({"no_such_option": 1}, TypeError),
])
def test_bad_options_raise_typed_errors(options, error):
    with pytest.raises(error):
        Recipe.from_options(options)


def test_vector_identity_names_optional_options_only_when_set():
    plain = Recipe().vector_identity()
    assert set(plain) == {"templates", "layer", "max_seq_length"}
    assert Recipe(prefix_cache=False, max_tokens_per_forward=64).vector_identity() == plain
    assert Recipe(chunk_tokens=32).vector_identity()["chunk_tokens"] == 32


@pytest.mark.parametrize("command", [
    ["encode", "x"], ["export", "name", "out"], ["fit-center", "out"], ["eval", "sts"], ["eval", "retrieval"],
    ["sweep"], ["tune-layer"], ["tune", "tp"],
])
def test_every_command_takes_every_recipe_option(command):
    flags = ["--templates", "prompteol", "--query-templates", "ke", "--max-seq-length", "300", "--no-prefix-cache",
             "--max-tokens-per-forward", "1024", "--chunk-tokens", "32", "--token-prepending", "1,3",
             "--contrastive", "2,nr", "--quantize", "int8"]
    if command[0] in ("encode", "export", "fit-center"):
        flags += ["--layer", "20"]
    args = build_parser().parse_args(command + flags)
    options = recipe_options(args)
    assert set(options) == set(Recipe.option_names())
    recipe = Recipe.from_options(options)
    assert recipe.templates.name == "prompteol" and recipe.task_templates["query"].name == "ke"
    assert (recipe.max_seq_length, recipe.prefix_cache, recipe.max_tokens_per_forward, recipe.chunk_tokens) == (
        300, False, 1024, 32)
    assert recipe.token_prepending == TokenPrepending(1, 3) and recipe.contrastive.mode == "nr"
    assert recipe.quantize == "int8" and recipe.layer == (20 if command[0] in ("encode", "export", "fit-center")
                                                           else None)


def _package_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("metaeol_integrations"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("metaeol_integrations"))
    return names


BOTTOM = {"metaeol_integrations.errors", "metaeol_integrations.locations", "metaeol_integrations._version"}


@pytest.mark.parametrize("path", sorted((PACKAGE / "core").glob("*.py")), ids=lambda path: path.name)
def test_core_imports_nothing_above_it(path):
    allowed = BOTTOM
    for name in _package_imports(path):
        assert name.startswith("metaeol_integrations.core") or name in allowed, f"{path.name} imports {name}"


@pytest.mark.parametrize("name", ["core/persistence.py", "locations.py", "errors.py", "_version.py"])
def test_the_bottom_layer_imports_only_the_bottom_layer(name):
    assert _package_imports(PACKAGE / name) <= BOTTOM


# A value other than the default for every recipe option; a new option fails the tests below until it is added here.
OTHER_VALUES = {
    "templates": "prompteol", "task_templates": {"query": "prompteol"}, "layer": 2, "max_seq_length": 300,
    "prefix_cache": False, "max_tokens_per_forward": 1000, "token_prepending": (1, 2),
    "contrastive": {"layer": 1, "mode": "nr"}, "quantize": "int8", "chunk_tokens": 16, "readout": "slot-mean",
}


def test_every_recipe_option_has_a_value_in_these_tests():
    assert set(OTHER_VALUES) == set(Recipe.option_names())


@pytest.mark.parametrize("name", Recipe.option_names())
def test_every_option_is_a_module_attribute_whose_setter_changes_the_recipe(tiny_model_dir, name):
    import metaeol_integrations

    module = metaeol_integrations.load(str(tiny_model_dir), device="cpu")[0]
    assert getattr(module, name) == Recipe().to_config()[name]
    setattr(module, name, OTHER_VALUES[name])
    assert module.recipe.to_config()[name] != Recipe().to_config()[name]
    assert getattr(module, name) == module.recipe.to_config()[name]


@pytest.mark.parametrize("name", Recipe.option_names())
def test_every_option_is_a_flag_of_encode(name):
    from metaeol_integrations.cli.options import FLAG_OF_OPTION

    parser = build_parser()
    encode = next(action for action in parser._subparsers._group_actions[0].choices.values()
                  if action.prog.endswith(" encode"))
    assert FLAG_OF_OPTION.get(name, name) in {action.dest for action in encode._actions}


def test_one_run_label_names_every_vector_changing_option_and_a_non_default_dtype():
    from metaeol_integrations.evaluation.report import file_slug, run_label

    options = {"templates": "prompteol", "chunk_tokens": 32, "token_prepending": [1, 5], "quantize": None}
    assert run_label("metaeol-smollm2-135m", options) == "metaeol-smollm2-135m, prompteol, chunks of 32 tokens, TP 1-5"
    assert run_label("m", {}, dtype="float32") == "m"
    assert run_label("m", {}, dtype="bfloat16", layer=-2) == "m, bfloat16, layer -2"
    assert file_slug("metaeol-smollm2-135m, prompteol, layer -2") == "metaeol-smollm2-135m-prompteol-layer--2"
