"""A recipe: every option that decides what a MetaEOL model computes, written once.

:class:`Recipe` is the only place where the options, their defaults, their validation and their
``metaeol_config.json`` form are spelled out. The module, ``load``, ``export``, weightless folders, presets, the CLI,
the evaluation's cache identity and the recipe tuner all take or give a ``Recipe``. What can only be checked against
a model (a layer that must exist, a Token Prepending range within its depth) is checked when the module applies the
recipe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from metaeol_integrations.core.contrastive import ContrastivePrompting
from metaeol_integrations.core.quantization import check_quantize_mode
from metaeol_integrations.core.templates import TemplateSet, effective_layer
from metaeol_integrations.core.token_prepending import TokenPrepending
from metaeol_integrations.errors import LayerError, TemplateError

# What a prompt's vector is read from: the last token (MetaEOL, PromptEOL), or the mean over the text's own tokens
# inside the prompt ("slot-mean": mean pooling with a prompt, for long documents; docs/retrieval.md).
READOUTS = ("last-token", "slot-mean")


def _positive_int(name: str, value: Any, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive number of tokens, not {value!r}. Fix: e.g. {fix}.")
    return value


def _layer(value: Any) -> int | tuple[int, ...] | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0 and all(
            isinstance(index, int) and not isinstance(index, bool) for index in value):
        return tuple(value)
    raise LayerError(f"layer must be None, an int or a non-empty list of ints, not {value!r}. Fix: e.g. layer=-1.")


def _saved_form(value: Any) -> Any:
    """An option's JSON form: template sets as dicts, method settings by their ``to_config``, tuples as lists."""
    if isinstance(value, TemplateSet):
        return value.to_dict()
    if hasattr(value, "to_config"):
        return value.to_config()
    if isinstance(value, Mapping):
        return {str(key): _saved_form(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return list(value)
    return value


@dataclass(frozen=True)
class Recipe:
    """What a MetaEOL model computes; every field is an option of ``load``, the module, the CLI and presets.

    Args:
        templates: The prompt templates every text is wrapped in: a built-in name (``"metaeol"``, ``"prompteol"``,
            ``"ke"``, ensembles such as ``"metaeol+ke"``), a :class:`TemplateSet`, a dict or a list of templates.
        task_templates: Template sets for sentence-transformers tasks, e.g. ``{"query": "prompteol"}`` for
            ``encode_query``.
        layer: Output layer (``hidden_states`` numbering; ``-1`` = final normed output) or layers to average;
            ``None``: each template's own published layer, else ``-1``.
        max_seq_length: Longest prompt in tokens; longer prompts lose tokens from the end of the text only.
        prefix_cache: Run each template's shared prefix once and the rest against its keys and values.
        max_tokens_per_forward: Cap on tokens in one forward call (memory bound for long or many texts).
        token_prepending: Token Prepending: ``True`` (decoder layers 1..6) or ``(start, exit)``; None: off.
        contrastive: Contrastive Prompting: ``True`` or ``{"layer", "mode", "alpha"}``; None: off.
        quantize: ``"int8"``: the decoder's Linear layers compute in int8 on the CPU; None: exact float32.
        chunk_tokens: Chunked pooling: texts longer than this many tokens are embedded as windows of this many
            tokens and get the mean of their vectors (documents and plain ``encode``; queries, ``encode_query``,
            are embedded whole); None: one pass per text.
        readout: ``"last-token"`` (the method's) or ``"slot-mean"``: each prompt's vector is the mean of the states
            of the text's own tokens inside the prompt (mean pooling with a prompt).
    """

    templates: TemplateSet = field(default="metaeol")  # type: ignore[assignment]  (coerced in __post_init__)
    task_templates: Mapping[str, TemplateSet] = field(default_factory=dict)
    layer: int | tuple[int, ...] | None = None
    max_seq_length: int = 512
    prefix_cache: bool = True
    max_tokens_per_forward: int = 8192
    token_prepending: TokenPrepending | None = None
    contrastive: ContrastivePrompting | None = None
    quantize: str | None = None
    chunk_tokens: int | None = None
    readout: str = "last-token"

    def __post_init__(self) -> None:
        coerced = {
            "templates": TemplateSet.coerce(self.templates),
            "task_templates": {str(task): TemplateSet.coerce(spec) for task, spec in (self.task_templates or {}).items()},
            "layer": _layer(self.layer),
            "max_seq_length": _positive_int("max_seq_length", self.max_seq_length, "512"),
            "prefix_cache": bool(self.prefix_cache),
            "max_tokens_per_forward": _positive_int("max_tokens_per_forward", self.max_tokens_per_forward, "8192"),
            "token_prepending": TokenPrepending.coerce(self.token_prepending),
            "contrastive": ContrastivePrompting.coerce(self.contrastive),
            "chunk_tokens": None if self.chunk_tokens is None else _positive_int(
                "chunk_tokens", self.chunk_tokens, "128"),
        }
        check_quantize_mode(self.quantize)
        if self.readout not in READOUTS:
            raise TemplateError(f"readout must be one of {READOUTS}, not {self.readout!r}. Fix: readout='slot-mean'.")
        if self.readout == "slot-mean" and (coerced["token_prepending"] or coerced["contrastive"]):
            raise TemplateError(
                "readout='slot-mean' reads the text's tokens, which Token Prepending and Contrastive Prompting (both "
                "acting on the last token) do not reach. Fix: use them with readout='last-token'."
            )
        for name, value in coerced.items():
            object.__setattr__(self, name, value)

    # -- building -------------------------------------------------------------------------------------------------

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The option names, in ``metaeol_config.json`` order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None = None, **more: Any) -> Recipe:
        """A recipe from option keywords, where None means "the default" (as in ``load``'s keywords)."""
        return cls().with_overrides({**(options or {}), **more})

    def with_overrides(self, options: Mapping[str, Any] | None = None, **more: Any) -> Recipe:
        """This recipe with the given options changed; None values leave an option as it is."""
        given = {**(options or {}), **more}
        unknown = sorted(set(given) - set(self.option_names()))
        if unknown:
            raise TypeError(f"Unknown recipe option(s) {unknown}. Fix: use {', '.join(self.option_names())}.")
        return dataclasses.replace(self, **{key: value for key, value in given.items() if value is not None})

    def replace(self, **options: Any) -> Recipe:
        """This recipe with the given options set, None included (e.g. ``layer=None`` for the templates' own)."""
        return dataclasses.replace(self, **options)

    # -- the saved form -------------------------------------------------------------------------------------------

    def to_config(self) -> dict[str, Any]:
        """The JSON form written to ``metaeol_config.json`` (and read back by :meth:`from_config`), option by option
        in :meth:`option_names` order."""
        return {name: _saved_form(getattr(self, name)) for name in self.option_names()}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Recipe:
        """The recipe of a ``metaeol_config.json`` (other keys, e.g. ``base_model``, are left to the caller)."""
        return cls.from_options({key: config[key] for key in cls.option_names() if key in config})

    def changed_options(self) -> dict[str, Any]:
        """The options that differ from the defaults, in their saved form (how presets, labels and cache keys
        name a recipe)."""
        default = Recipe().to_config()
        return {key: value for key, value in self.to_config().items() if value != default[key]}

    def vector_identity(self) -> dict[str, Any]:
        """The options that decide the vectors, in saved form (the evaluation's cache key): templates, the layer(s)
        actually read and max_seq_length, plus each other option only when it is set, so the key of a plain recipe
        never changes when options are added. ``prefix_cache`` and ``max_tokens_per_forward`` change how the vectors
        are computed, not what they are (within float tolerance), and are left out."""
        changed = self.changed_options()
        optional = ("token_prepending", "contrastive", "quantize", "task_templates", "chunk_tokens", "readout")
        return {
            **{key: changed[key] for key in optional if key in changed},
            "templates": self.templates.to_dict(),
            "layer": self.effective_layer,
            "max_seq_length": self.max_seq_length,
        }

    # -- facts ---------------------------------------------------------------------------------------------------

    @property
    def effective_layer(self) -> int | list[int] | dict[str, int]:
        """The layer(s) read for the default template set (see :func:`~metaeol_integrations.core.templates.effective_layer`)."""
        return effective_layer(self.templates, self._saved_layer())

    def _saved_layer(self) -> int | list[int] | None:
        return list(self.layer) if isinstance(self.layer, tuple) else self.layer
