"""Prompt templates of MetaEOL and PromptEOL, the typed template-set configuration, and sentence preprocessing.

The strings are the paper's (Lei et al., ACL 2024, and its official ``evaluation.py``), character for character.
A template holds exactly one ``{sentence}`` slot. Filling it is plain concatenation of the text before the slot, the
sentence and the text after it: user text never passes through ``str.format``, so braces or a literal ``{sentence}``
inside a sentence stay inert.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Union

from metaeol_integrations.errors import TemplateError

SLOT = "{sentence}"

# The official code appends "." unless the sentence already ends in one of these characters.
_FINAL_PUNCTUATION = ".?\"'"


def preprocess_sentence(text: str) -> str:
    """Apply the official MetaEOL/PromptEOL preprocessing to one sentence.

    Leading and trailing whitespace is stripped first (our addition: text read from files ends in newlines, and
    SentEval's sentences have none). Then, as in the official code: append ``.`` unless the sentence ends in
    ``. ? " '``; replace ``"`` with ``'`` so the slot's closing quote stays unambiguous; a trailing ``?`` becomes
    ``.``. An empty or whitespace-only text stays empty (see ``docs/decisions.md``).
    """
    if not isinstance(text, str):
        raise TypeError(f"MetaEOL embeds strings; got {type(text).__name__}. Convert the input with str() first.")
    sentence = text.strip()
    if sentence and sentence[-1] not in _FINAL_PUNCTUATION:
        sentence += "."
    sentence = sentence.replace('"', "'")
    if sentence.endswith("?"):
        sentence = sentence[:-1] + "."
    return sentence


@dataclass(frozen=True)
class PromptTemplate:
    """One prompt template, split once at its single ``{sentence}`` slot."""

    text: str
    prefix: str = field(init=False, repr=False)
    suffix: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise TemplateError(f"A template must be a string, got {type(self.text).__name__}.")
        count = self.text.count(SLOT)
        if count != 1:
            raise TemplateError(
                f"A template needs exactly one {SLOT} slot, found {count} in {self.text!r}. "
                f"Fix: write the template with a single {SLOT} where the sentence goes."
            )
        prefix, suffix = self.text.split(SLOT)
        object.__setattr__(self, "prefix", prefix)
        object.__setattr__(self, "suffix", suffix)

    def fill(self, sentence: str) -> str:
        """Put an already preprocessed sentence into the slot (concatenation, never ``str.format``)."""
        return self.prefix + sentence + self.suffix


@dataclass(frozen=True)
class MetaTask:
    """A named meta-task (e.g. sentiment analysis) and its templates."""

    name: str
    templates: tuple[PromptTemplate, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TemplateError("A meta-task needs a non-empty name.")
        templates = tuple(t if isinstance(t, PromptTemplate) else PromptTemplate(t) for t in self.templates)
        if not templates:
            raise TemplateError(f"Meta-task {self.name!r} has no template. Fix: give it at least one template.")
        object.__setattr__(self, "templates", templates)


TemplateSpec = Union["TemplateSet", str, Mapping[str, Iterable[str]], Iterable[str]]


@dataclass(frozen=True)
class TemplateSet:
    """An ordered set of meta-tasks; the sentence embedding is the mean over all their templates."""

    meta_tasks: tuple[MetaTask, ...]
    name: str = "custom"

    def __post_init__(self) -> None:
        meta_tasks = tuple(self.meta_tasks)
        if not meta_tasks:
            raise TemplateError("A template set needs at least one meta-task with at least one template.")
        names = [task.name for task in meta_tasks]
        if len(set(names)) != len(names):
            raise TemplateError(f"Meta-task names must be unique, got {names}.")
        object.__setattr__(self, "meta_tasks", meta_tasks)

    @property
    def templates(self) -> tuple[PromptTemplate, ...]:
        """All templates, meta-task by meta-task, in a fixed order."""
        return tuple(template for task in self.meta_tasks for template in task.templates)

    def __len__(self) -> int:
        return len(self.templates)

    def subset(self, meta_task_names: Iterable[str]) -> TemplateSet:
        """The template set restricted to some meta-tasks (for the paper's Figure 3 style sweeps)."""
        wanted = list(meta_task_names)
        by_name = {task.name: task for task in self.meta_tasks}
        unknown = [name for name in wanted if name not in by_name]
        if unknown:
            raise TemplateError(f"Unknown meta-task(s) {unknown}; this set has {list(by_name)}.")
        return TemplateSet(tuple(by_name[name] for name in wanted), name=f"{self.name}[{','.join(wanted)}]")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description, the inverse of :meth:`from_dict`."""
        return {
            "name": self.name,
            "meta_tasks": {task.name: [t.text for t in task.templates] for task in self.meta_tasks},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TemplateSet:
        """Build a set from ``{"name": ..., "meta_tasks": {task: [template, ...]}}``."""
        if not isinstance(data, Mapping) or "meta_tasks" not in data:
            raise TemplateError('A template-set dict needs a "meta_tasks" mapping of task name to templates.')
        return cls.from_mapping(data["meta_tasks"], name=str(data.get("name", "custom")))

    @classmethod
    def from_mapping(cls, meta_tasks: Mapping[str, Iterable[str]], name: str = "custom") -> TemplateSet:
        """Build a set from ``{meta_task_name: [template, ...]}``."""
        tasks = []
        for task_name, templates in meta_tasks.items():
            if isinstance(templates, str):
                templates = [templates]
            tasks.append(MetaTask(task_name, tuple(templates)))
        return cls(tuple(tasks), name=name)

    @classmethod
    def coerce(cls, spec: TemplateSpec) -> TemplateSet:
        """Accept a TemplateSet, a built-in name (``"metaeol"``, ``"prompteol"``), a dict or a list of templates."""
        if isinstance(spec, TemplateSet):
            return spec
        if isinstance(spec, str):
            if spec in BUILTIN_TEMPLATE_SETS:
                return BUILTIN_TEMPLATE_SETS[spec]
            if SLOT in spec:
                return cls((MetaTask("custom", (spec,)),), name="custom")
            raise TemplateError(
                f"Unknown template set {spec!r}. Fix: use one of {sorted(BUILTIN_TEMPLATE_SETS)} "
                f"or a template string containing {SLOT}."
            )
        if isinstance(spec, Mapping):
            return cls.from_dict(spec) if "meta_tasks" in spec else cls.from_mapping(spec)
        if isinstance(spec, Iterable):
            templates = tuple(spec)
            return cls((MetaTask("custom", templates),), name="custom")
        raise TemplateError(f"Cannot build a template set from {type(spec).__name__}.")


_HEAD = "In this task, you're "
_FOR = "For this task, this sentence : \"{sentence}\""
_ENHANCE = "To enhance the performance of this task, this sentence : \"{sentence}\""

METAEOL_TEMPLATES = TemplateSet(
    (
        MetaTask(
            "text_classification",
            (
                _HEAD + "presented with a text excerpt. Your task is to categorize the excerpt into a broad category "
                "such as 'Education', 'Technology', 'Health', 'Business', 'Environment', 'Politics', or 'Culture'. "
                "These categories help in organizing content for better accessibility and targeting. "
                + _FOR + " should be classified under one general category in one word:\"",
                _HEAD + "given a statement and you need to determine whether it's presenting an 'Opinion' or a "
                "'Fact'. This distinction is vital for information verification, educational purposes, and content "
                "analysis. " + _FOR + " discriminates between opinion and fact in one word:\"",
            ),
        ),
        MetaTask(
            "sentiment_analysis",
            (
                _HEAD + "given a review from an online platform. Your task is to generate a rating for the product "
                "based on the review on a scale of 1-5, where 1 means 'extremely negative' and 5 means 'extremely "
                "positive'. " + _FOR + " reflects the sentiment in one word:\"",
                _HEAD + "reading a personal diary entry. Your task is to identify the predominant emotion expressed, "
                "such as joy, sadness, anger, fear, or love. " + _FOR + " conveys the emotion in one word:\"",
            ),
        ),
        MetaTask(
            "paraphrase_identification",
            (
                _HEAD + "presented with two sentences. Your task is to assess whether the sentences convey the same "
                "meaning. Use 'identical', 'similar', 'different', or 'unrelated' to describe the relationship. "
                + _ENHANCE + " means in one word:\"",
                _HEAD + "given a sentence and a phrase. Your task is to determine if the phrase can be a contextual "
                "synonym within the given sentence. Options include 'yes', 'no', or 'partially'. "
                + _ENHANCE + " means in one word:\"",
            ),
        ),
        MetaTask(
            "information_extraction",
            (
                _HEAD + "examining a news article. Your task is to extract the most critical fact from the article. "
                + _FOR + " encapsulates the key fact in one word:\"",
                _HEAD + "reviewing a scientific abstract. Your task is to identify the main entities (e.g., proteins, "
                "diseases) and their relations (e.g., causes, treats). "
                + _FOR + " highlights the primary entity or relation in one word:\"",
            ),
        ),
    ),
    name="metaeol",
)

PROMPTEOL_TEMPLATES = TemplateSet(
    (MetaTask("prompteol", ('This sentence : "{sentence}" means in one word:"',)),),
    name="prompteol",
)

BUILTIN_TEMPLATE_SETS: Mapping[str, TemplateSet] = MappingProxyType(
    {METAEOL_TEMPLATES.name: METAEOL_TEMPLATES, PROMPTEOL_TEMPLATES.name: PROMPTEOL_TEMPLATES}
)
