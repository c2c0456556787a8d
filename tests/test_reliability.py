"""Reliability: property-based tests over arbitrary text, thread-count invariance, dtype errors, and what a model
folder's files can and cannot make the package do."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import metaeol_integrations
from metaeol_integrations import METAEOL_TEMPLATES, TemplateError, UnsupportedDTypeError, preprocess_sentence
from metaeol_integrations.core.backbone import check_dtype_on_device, resolve_dtype
from tests.reference import full_prompt_ids

SPECIAL = [
    "", " ", "\t\n", "{sentence}", "{}", "{0}", '"', '""', '" in one word:"', "\x00", "\x1b[31m", "\u202eevil",
    "مرحبا بالعالم", "שלום", "😀🎉👍🏽", "👨‍👩‍👧", "e\u0301", "\ufeff", "\u200b", "?", "a?", "'\"'", "\\", "%s %d",
]
# Any unicode except surrogates (not encodable), plus the strings most likely to break a template.
TEXT = st.one_of(st.sampled_from(SPECIAL), st.text(max_size=80), st.text(st.characters(codec="utf-8"), max_size=40))
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(text=TEXT)
def test_user_text_never_changes_the_template_around_it(tiny, text):
    features = tiny[0].preprocess([text])
    prompts = full_prompt_ids(features)
    sentence = preprocess_sentence(text)
    for template, ids in zip(METAEOL_TEMPLATES.templates, prompts):
        decoded = tiny[0].tokenizer.decode(ids, skip_special_tokens=True)
        assert decoded.startswith(template.prefix)
        assert decoded.endswith(template.suffix)
        middle = decoded[len(template.prefix) : len(decoded) - len(template.suffix)]
        # The whole sentence, or (when too long) a beginning of it: never text after the slot.
        assert middle == sentence or sentence.startswith(middle)
        assert '"' not in middle  # the slot's closing quote cannot be imitated


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXT, neighbours=st.lists(TEXT, min_size=1, max_size=4))
def test_any_text_gives_a_finite_vector_whatever_its_neighbours(tiny, text, neighbours):
    alone = tiny.encode([text], batch_size=1)
    together = tiny.encode(neighbours + [text] + neighbours, batch_size=3)
    assert np.isfinite(alone).all() and alone.shape == (1, 64)
    np.testing.assert_allclose(together[len(neighbours)], alone[0], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_empty_and_whitespace_texts_all_get_the_empty_slot_vector(tiny):
    vectors = tiny.encode(["", " ", "\t\n ", "\u3000"], batch_size=2)
    for vector in vectors[1:]:
        np.testing.assert_allclose(vector, vectors[0], rtol=1e-6, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("unit", ["a", "é", "😀", "مرح", "\x07", '"{sentence}"'])
def test_hundred_thousand_character_texts_are_truncated_inside_the_slot(tiny, unit):
    text = (unit * (100_000 // len(unit) + 1))[:100_000]
    features = tiny[0].preprocess([text])
    for template, ids in zip(METAEOL_TEMPLATES.templates, full_prompt_ids(features)):
        assert len(ids) <= tiny.max_seq_length
        assert tiny[0].tokenizer.decode(ids, skip_special_tokens=True).endswith(template.suffix)
    assert np.isfinite(tiny.encode([text])).all()


@pytest.mark.slow
def test_the_number_of_torch_threads_does_not_change_vectors(tiny):
    texts = ["A man is playing a guitar.", "Why is the sky blue?", "", "x" * 300]
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(tiny.encode(texts, batch_size=2))
    finally:
        torch.set_num_threads(before)
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["int8", "bool", torch.int64, "float33"])
def test_non_floating_or_unknown_dtypes_are_refused_with_a_fix(tiny_model_dir, dtype):
    with pytest.raises(UnsupportedDTypeError, match="Fix: use one of float32"):
        resolve_dtype(dtype)
    with pytest.raises(UnsupportedDTypeError):
        metaeol_integrations.load(str(tiny_model_dir), model_kwargs={"dtype": dtype})


def test_a_dtype_the_device_cannot_compute_in_is_a_clear_error(monkeypatch, tiny_model_dir):
    check_dtype_on_device(torch.float32, "cpu")  # the supported case passes silently

    def unsupported(*args, **kwargs):
        raise RuntimeError('"addmm_impl_cpu_" not implemented for \'Half\'')

    monkeypatch.setattr(torch, "softmax", unsupported)
    with pytest.raises(UnsupportedDTypeError, match="Fix: use dtype=float32 on cpu"):
        check_dtype_on_device(torch.float16, "cpu")
    with pytest.raises(UnsupportedDTypeError, match="Fix: use dtype=float32"):
        metaeol_integrations.load(str(tiny_model_dir), model_kwargs={"dtype": "float16"}, device="cpu")


def test_folder_config_cannot_run_code_through_auto_map(tiny_model_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    marker = tmp_path / "code-ran"
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\nfrom transformers import LlamaModel as EvilModel\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "evil.EvilModel", "AutoConfig": "evil.EvilConfig"}
    (folder / "config.json").write_text(json.dumps(config))
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    tokenizer_config["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", None]}
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    try:
        model = metaeol_integrations.load(str(folder))
        assert type(model[0].auto_model).__name__ == "LlamaModel"
    except Exception as error:  # refusing is fine too, as long as it is not by running the code
        assert "trust_remote_code" in str(error) or isinstance(error, metaeol_integrations.MetaEOLError)
    assert not marker.exists()


@pytest.mark.parametrize("templates", ["/etc/passwd", "../../secret.json", "file:///etc/hosts"])
def test_saved_template_setting_is_never_read_as_a_path(tiny, tmp_path, templates):
    tiny.save(str(tmp_path))
    config_path = tmp_path / "metaeol_config.json"
    config = json.loads(config_path.read_text())
    config["templates"] = templates
    config_path.write_text(json.dumps(config))
    with pytest.raises(TemplateError, match="Unknown template set"):
        metaeol_integrations.load(str(tmp_path))
