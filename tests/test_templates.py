"""Templates, their validation, and sentence preprocessing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from metaeol_integrations import (
    METAEOL_TEMPLATES,
    PROMPTEOL_TEMPLATES,
    MetaTask,
    PromptTemplate,
    TemplateError,
    TemplateSet,
    preprocess_sentence,
)
from tests.reference import official_preprocess

SPEC = Path(__file__).resolve().parents[2] / "shared" / "docs" / "metaeol-reference.md"


@pytest.mark.skipif(not SPEC.is_file(), reason="the project spec lives in ../shared beside the repo")
def test_templates_are_the_specs_strings_exactly():
    spec = SPEC.read_text(encoding="utf-8")
    numbered = re.findall(r"^\d\. `(.*)`$", spec, re.M)
    assert len(numbered) == 8
    assert [t.text for t in METAEOL_TEMPLATES.templates] == numbered
    prompteol = re.search(r"^PromptEOL \(Jiang.*?: `(.*?)`$", spec, re.M).group(1)
    assert [t.text for t in PROMPTEOL_TEMPLATES.templates] == [prompteol]


def test_paper_set_has_four_meta_tasks_of_two_templates():
    assert [task.name for task in METAEOL_TEMPLATES.meta_tasks] == [
        "text_classification", "sentiment_analysis", "paraphrase_identification", "information_extraction",
    ]
    assert all(len(task.templates) == 2 for task in METAEOL_TEMPLATES.meta_tasks)
    assert all(t.text.endswith('in one word:"') for t in METAEOL_TEMPLATES.templates)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("A man plays", "A man plays."),
        ("A man plays.", "A man plays."),
        ("Is it raining?", "Is it raining."),
        ('He said "hi"', "He said 'hi'"),
        ('Say "yes" now', "Say 'yes' now."),
        ("It's 'quoted'", "It's 'quoted'"),
        ("Wow!", "Wow!."),
        ("  padded text \n", "padded text."),
        ("", ""),
        ("   \t\n", ""),
    ],
)
def test_preprocessing_follows_the_official_code(raw, expected):
    assert preprocess_sentence(raw) == expected
    assert preprocess_sentence(raw) == official_preprocess(raw)


def test_preprocessing_rejects_non_strings():
    with pytest.raises(TypeError, match="strings"):
        preprocess_sentence(3)  # type: ignore[arg-type]


def test_fill_never_formats_user_text():
    template = PromptTemplate('This sentence : "{sentence}" means in one word:"')
    sentence = "{sentence} {0} {} {__class__}"
    assert template.fill(sentence) == 'This sentence : "' + sentence + '" means in one word:"'


def test_template_with_other_braces_is_fine():
    template = PromptTemplate('Given {x}, this sentence : "{sentence}" in one word:"')
    assert template.prefix == 'Given {x}, this sentence : "'


@pytest.mark.parametrize("text", ["no slot here", "{sentence} and {sentence}", ""])
def test_template_needs_exactly_one_slot(text):
    with pytest.raises(TemplateError, match="exactly one"):
        PromptTemplate(text)


def test_template_errors_are_value_errors():
    assert issubclass(TemplateError, ValueError)


def test_empty_sets_and_tasks_are_rejected():
    with pytest.raises(TemplateError, match="at least one"):
        TemplateSet(())
    with pytest.raises(TemplateError, match="no template"):
        MetaTask("empty", ())
    with pytest.raises(TemplateError):
        TemplateSet.coerce([])
    with pytest.raises(TemplateError):
        TemplateSet.coerce({"task": []})


def test_duplicate_meta_task_names_are_rejected():
    task = MetaTask("a", ('"{sentence}"',))
    with pytest.raises(TemplateError, match="unique"):
        TemplateSet((task, task))


def test_coerce_accepts_every_documented_form():
    assert TemplateSet.coerce("metaeol") is METAEOL_TEMPLATES
    assert TemplateSet.coerce("prompteol") is PROMPTEOL_TEMPLATES
    single = TemplateSet.coerce('X "{sentence}" in one word:"')
    assert len(single) == 1
    listed = TemplateSet.coerce(['A "{sentence}"', 'B "{sentence}"'])
    assert [t.text for t in listed.templates] == ['A "{sentence}"', 'B "{sentence}"']
    mapping = TemplateSet.coerce({"x": ['A "{sentence}"'], "y": 'B "{sentence}"'})
    assert [task.name for task in mapping.meta_tasks] == ["x", "y"]
    with pytest.raises(TemplateError, match="Unknown template set"):
        TemplateSet.coerce("metaeoll")


def test_dict_round_trip_and_subset():
    again = TemplateSet.from_dict(METAEOL_TEMPLATES.to_dict())
    assert again == METAEOL_TEMPLATES
    subset = METAEOL_TEMPLATES.subset(["sentiment_analysis"])
    assert len(subset) == 2
    assert subset.templates == METAEOL_TEMPLATES.meta_tasks[1].templates
    with pytest.raises(TemplateError, match="Unknown meta-task"):
        METAEOL_TEMPLATES.subset(["nope"])
