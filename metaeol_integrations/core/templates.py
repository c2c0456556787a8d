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
    """A named meta-task (e.g. sentiment analysis) and its templates.

    ``layer`` is the readout layer its method was published with (``hidden_states`` numbering, e.g. -2 for PCoT and
    KE), used unless the model is given ``layer=``; None means the model's default (-1). ``member`` names the
    ensemble member it belongs to (see :meth:`TemplateSet.ensemble`); None outside ensembles.
    """

    name: str
    templates: tuple[PromptTemplate, ...]
    layer: int | None = None
    member: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TemplateError("A meta-task needs a non-empty name.")
        templates = tuple(t if isinstance(t, PromptTemplate) else PromptTemplate(t) for t in self.templates)
        if not templates:
            raise TemplateError(f"Meta-task {self.name!r} has no template. Fix: give it at least one template.")
        if self.layer is not None and (isinstance(self.layer, bool) or not isinstance(self.layer, int)):
            raise TemplateError(f"Meta-task {self.name!r}: layer must be an int, not {self.layer!r}.")
        object.__setattr__(self, "templates", templates)


TemplateSpec = Union["TemplateSet", str, Mapping[str, Iterable[str]], Iterable[str]]


def effective_layer(templates: TemplateSet, layer: int | list[int] | None) -> int | list[int] | dict[str, int]:
    """The readout layer(s) a model with ``layer`` and these templates uses: ``layer`` when given, -1 when no
    meta-task names its own, else ``{meta_task: layer}`` (-1 for those without)."""
    if layer is not None:
        return layer
    if all(task.layer is None for task in templates.meta_tasks):
        return -1
    return {task.name: -1 if task.layer is None else task.layer for task in templates.meta_tasks}


@dataclass(frozen=True)
class TemplateSet:
    """An ordered set of meta-tasks; the sentence embedding is the mean over all their templates.

    In an ensemble (meta-tasks with a ``member``) it is the mean over members of each member's mean over its
    templates, so ``metaeol+ke`` weighs MetaEOL's 8 prompts and KE's one prompt equally.
    """

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

    def prompt_layers(self) -> tuple[int | None, ...]:
        """Each template's own readout layer (None: the model's layer), in :attr:`templates` order."""
        return tuple(task.layer for task in self.meta_tasks for _ in task.templates)

    def prompt_weights(self) -> tuple[float, ...]:
        """Each template's weight in the sentence embedding (they sum to 1), in :attr:`templates` order."""
        members: dict[str | None, int] = {}
        for task in self.meta_tasks:
            members[task.member] = members.get(task.member, 0) + len(task.templates)
        return tuple(1.0 / (len(members) * members[task.member]) for task in self.meta_tasks for _ in task.templates)

    @property
    def is_uniform(self) -> bool:
        """True when every template has the same weight and no own layer (the plain MetaEOL mean)."""
        return all(task.layer is None and task.member is None for task in self.meta_tasks)

    @classmethod
    def ensemble(cls, members: Mapping[str, TemplateSpec] | Iterable[TemplateSpec], name: str | None = None) -> TemplateSet:
        """Average several template sets, each keeping its own readout layer; members are weighted equally.

        ``members`` is a mapping ``{member name: set}`` or a sequence of sets (named by their own names).
        """
        items = list(members.items()) if isinstance(members, Mapping) else [(None, spec) for spec in members]
        tasks: list[MetaTask] = []
        names: list[str] = []
        for member_name, spec in items:
            member = cls.coerce(spec)
            label = member_name or member.name
            if label in names:
                raise TemplateError(f"Ensemble member {label!r} appears twice. Fix: give each member once.")
            names.append(label)
            tasks += [MetaTask(f"{label}/{task.name}", task.templates, task.layer, label) for task in member.meta_tasks]
        if len(names) < 2:
            raise TemplateError("An ensemble needs at least two members, e.g. templates='metaeol+ke'.")
        return cls(tuple(tasks), name=name or "+".join(names))

    def subset(self, meta_task_names: Iterable[str]) -> TemplateSet:
        """The template set restricted to some meta-tasks (for the paper's Figure 3 style sweeps)."""
        wanted = list(meta_task_names)
        by_name = {task.name: task for task in self.meta_tasks}
        unknown = [name for name in wanted if name not in by_name]
        if unknown:
            raise TemplateError(f"Unknown meta-task(s) {unknown}; this set has {list(by_name)}.")
        return TemplateSet(tuple(by_name[name] for name in wanted), name=f"{self.name}[{','.join(wanted)}]")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description, the inverse of :meth:`from_dict` (``layers`` / ``members`` only when set)."""
        record: dict[str, Any] = {
            "name": self.name,
            "meta_tasks": {task.name: [t.text for t in task.templates] for task in self.meta_tasks},
        }
        layers = {task.name: task.layer for task in self.meta_tasks if task.layer is not None}
        members = {task.name: task.member for task in self.meta_tasks if task.member is not None}
        if layers:
            record["layers"] = layers
        if members:
            record["members"] = members
        return record

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TemplateSet:
        """Build a set from ``{"name": ..., "meta_tasks": {task: [template, ...]}, "layers": {task: layer},
        "members": {task: member}}`` (the last two optional)."""
        if not isinstance(data, Mapping) or "meta_tasks" not in data:
            raise TemplateError('A template-set dict needs a "meta_tasks" mapping of task name to templates.')
        plain = cls.from_mapping(data["meta_tasks"], name=str(data.get("name", "custom")))
        layers, members = dict(data.get("layers") or {}), dict(data.get("members") or {})
        unknown = sorted((set(layers) | set(members)) - {task.name for task in plain.meta_tasks})
        if unknown:
            raise TemplateError(f"layers/members name meta-tasks that the set does not have: {unknown}.")
        return cls(tuple(MetaTask(task.name, task.templates, layers.get(task.name), members.get(task.name))
                         for task in plain.meta_tasks), name=plain.name)

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
            if "+" in spec and all(part.strip() in BUILTIN_TEMPLATE_SETS for part in spec.split("+")):
                return cls.ensemble([part.strip() for part in spec.split("+")], name=spec.replace(" ", ""))
            raise TemplateError(
                f"Unknown template set {spec!r}. Fix: use one of {sorted(BUILTIN_TEMPLATE_SETS)}, an ensemble of "
                f"them joined by '+' (e.g. 'metaeol+ke'), or a template string containing {SLOT}."
            )
        if isinstance(spec, Mapping):
            if "meta_tasks" in spec:
                return cls.from_dict(spec)
            if spec and all(isinstance(value, (TemplateSet, Mapping)) for value in spec.values()):
                return cls.ensemble(spec)  # {member name: set}
            if spec and all(isinstance(value, str) and value in BUILTIN_TEMPLATE_SETS and SLOT not in value
                            for value in spec.values()):
                return cls.ensemble(spec)
            return cls.from_mapping(spec)
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

# Pretended CoT and Knowledge Enhancement (Zhang et al., arXiv 2404.03921): one template each, read out at HS[-2]
# (no final norm), as in their official code. Strings are the code's, spacing included (`step by step ,`, `mind ,`).
PCOT_TEMPLATES = TemplateSet(
    (MetaTask("pcot", ('After thinking step by step , this sentence : "{sentence}" means in one word:"',), layer=-2),),
    name="pcot",
)

KE_TEMPLATES = TemplateSet(
    (
        MetaTask(
            "ke",
            ("The essence of a sentence is often captured by its main subjects and actions, while descriptive terms "
             "provide additional but less central details. With this in mind , this sentence : \"{sentence}\" means "
             "in one word:\"",),
            layer=-2,
        ),
    ),
    name="ke",
)

# CK (Contrastive Prompting paper, arXiv 2505.12831): the mean of the PCoT and KE embeddings.
CK_TEMPLATES = TemplateSet.ensemble({"pcot": PCOT_TEMPLATES, "ke": KE_TEMPLATES}, name="ck")

# Retrieval prompts in the manner of PromptReps (Zhuang et al., 2024: "Use one word to represent the passage in a
# retrieval task"), one for each side, with our one-word ending: documents via `templates`, queries via
# `task_templates={"query": "retrieval-query"}` (docs/retrieval.md).
RETRIEVAL_DOCUMENT_TEMPLATES = TemplateSet(
    (MetaTask("retrieval-document", ('Passage : "{sentence}" Use one word to represent the passage in a retrieval '
                                     'task. This passage means in one word:"',)),),
    name="retrieval-document",
)
RETRIEVAL_QUERY_TEMPLATES = TemplateSet(
    (MetaTask("retrieval-query", ('Query : "{sentence}" Use one word to represent the query in a retrieval task. '
                                  'This query means in one word:"',)),),
    name="retrieval-query",
)

# Text-first MetaEOL (docs/methods.md, "Text first"): the text comes first and each meta-task's instruction and
# one-word ending follow it, so the eight prompts of a text share every token up to the end of the text and the
# text is computed once (core/shared_text.py). Each tail keeps its paper template's task description, reworded to
# refer back to the sentence, and the paper template's exact ending.
_TEXT_FIRST = 'This sentence : "{sentence}" '
_THIS = "This sentence"

METAEOL_TEXTFIRST_TEMPLATES = TemplateSet(
    (
        MetaTask(
            "text_classification",
            (
                _TEXT_FIRST + "In this task, you categorize a text excerpt into a broad category such as 'Education', "
                "'Technology', 'Health', 'Business', 'Environment', 'Politics', or 'Culture'. " + _THIS
                + " should be classified under one general category in one word:\"",
                _TEXT_FIRST + "In this task, you determine whether a statement presents an 'Opinion' or a 'Fact'. "
                + _THIS + " discriminates between opinion and fact in one word:\"",
            ),
        ),
        MetaTask(
            "sentiment_analysis",
            (
                _TEXT_FIRST + "In this task, you rate a product review on a scale of 1-5, where 1 means 'extremely "
                "negative' and 5 means 'extremely positive'. " + _THIS + " reflects the sentiment in one word:\"",
                _TEXT_FIRST + "In this task, you identify the predominant emotion of a diary entry, such as joy, "
                "sadness, anger, fear, or love. " + _THIS + " conveys the emotion in one word:\"",
            ),
        ),
        MetaTask(
            "paraphrase_identification",
            (
                _TEXT_FIRST + "In this task, you assess whether two sentences convey the same meaning: 'identical', "
                "'similar', 'different', or 'unrelated'. To enhance the performance of this task, this sentence "
                "means in one word:\"",
                _TEXT_FIRST + "In this task, you determine if a phrase can be a contextual synonym within a sentence: "
                "'yes', 'no', or 'partially'. To enhance the performance of this task, this sentence means in one "
                "word:\"",
            ),
        ),
        MetaTask(
            "information_extraction",
            (
                _TEXT_FIRST + "In this task, you extract the most critical fact from a news article. " + _THIS
                + " encapsulates the key fact in one word:\"",
                _TEXT_FIRST + "In this task, you identify the main entities (e.g., proteins, diseases) and their "
                "relations (e.g., causes, treats) in a scientific abstract. " + _THIS
                + " highlights the primary entity or relation in one word:\"",
            ),
        ),
    ),
    name="metaeol-textfirst",
)

# The same eight prompts with each task description cut to a few words before the paper's ending, so that a tail is
# about 15 tokens instead of 42: the cost per text approaches one pass over the text (docs/methods.md).
METAEOL_TEXTFIRST_SHORT_TEMPLATES = TemplateSet(
    (
        MetaTask(
            "text_classification",
            (_TEXT_FIRST + "Topic category: " + _THIS.lower() + " should be classified under one general category in "
             "one word:\"",
             _TEXT_FIRST + "Opinion or fact: " + _THIS.lower() + " discriminates between opinion and fact in one "
             "word:\""),
        ),
        MetaTask(
            "sentiment_analysis",
            (_TEXT_FIRST + "Rating from 1 to 5: " + _THIS.lower() + " reflects the sentiment in one word:\"",
             _TEXT_FIRST + "Predominant emotion: " + _THIS.lower() + " conveys the emotion in one word:\""),
        ),
        MetaTask(
            "paraphrase_identification",
            (_TEXT_FIRST + "Same meaning as another sentence: " + _THIS.lower() + " means in one word:\"",
             _TEXT_FIRST + "Contextual synonym: " + _THIS.lower() + " means in one word:\""),
        ),
        MetaTask(
            "information_extraction",
            (_TEXT_FIRST + "Most critical fact: " + _THIS.lower() + " encapsulates the key fact in one word:\"",
             _TEXT_FIRST + "Main entities and relations: " + _THIS.lower() + " highlights the primary entity or "
             "relation in one word:\""),
        ),
    ),
    name="metaeol-textfirst-short",
)

# KE with the text first (its published layer, HS[-2], kept); PromptEOL and PCoT already put only 'This sentence :'
# before the text, so they need no text-first variant.
KE_TEXTFIRST_TEMPLATES = TemplateSet(
    (
        MetaTask(
            "ke-textfirst",
            (_TEXT_FIRST + "The essence of a sentence is often captured by its main subjects and actions, while "
             "descriptive terms provide additional but less central details. With this in mind , this sentence means "
             "in one word:\"",),
            layer=-2,
        ),
    ),
    name="ke-textfirst",
)

BUILTIN_TEMPLATE_SETS: Mapping[str, TemplateSet] = MappingProxyType(
    {
        template_set.name: template_set
        for template_set in (METAEOL_TEMPLATES, PROMPTEOL_TEMPLATES, PCOT_TEMPLATES, KE_TEMPLATES, CK_TEMPLATES,
                             RETRIEVAL_DOCUMENT_TEMPLATES, RETRIEVAL_QUERY_TEMPLATES, METAEOL_TEXTFIRST_TEMPLATES,
                             METAEOL_TEXTFIRST_SHORT_TEMPLATES, KE_TEXTFIRST_TEMPLATES)
    }
)
