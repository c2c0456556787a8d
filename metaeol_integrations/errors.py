"""Typed exceptions raised by metaeol-integrations.

Each message ends with the one-line fix, so that a user reading a traceback knows what to do next.
"""

from __future__ import annotations


class MetaEOLError(Exception):
    """Base class of every error this package raises on purpose."""


class TemplateError(MetaEOLError, ValueError):
    """A prompt template or template set is malformed (no slot, two slots, empty set...)."""


class UnknownModelError(MetaEOLError, ValueError):
    """A name is neither a preset, a local model folder, nor a ``.gguf`` file."""


class ModelNotAvailableError(MetaEOLError, OSError):
    """The base LLM's weights cannot be found here (offline, gated, or a package is missing)."""


class UnsupportedModelError(MetaEOLError, ValueError):
    """The base model is not a decoder-only (causal) LLM, or its layout is not one we can read layers from."""


class LayerError(MetaEOLError, ValueError):
    """A requested output layer does not exist in the base model."""


class UnsupportedDTypeError(MetaEOLError, ValueError):
    """The requested dtype is not a floating-point type, or the device cannot compute in it."""


class SequenceLengthError(MetaEOLError, ValueError):
    """``max_seq_length`` is too small to hold a template with even one token of the sentence."""


class DataNotFoundError(MetaEOLError, FileNotFoundError):
    """The evaluation data folder or one of its files is missing."""


class ClusterResourcesError(MetaEOLError, ValueError):
    """The requested actor pool cannot run on the Ray cluster's resources (it would wait forever)."""


class IncomparableRunsError(MetaEOLError, ValueError):
    """Two evaluation runs cannot be compared pair by pair: a run file is missing or unreadable, the runs scored
    different tasks or pairs, or a file has no stored predictions."""


class WeightsModeError(MetaEOLError, ValueError):
    """A saved folder cannot hold its weights the requested way (e.g. a weightless folder for a local base)."""


class InputIdError(MetaEOLError, ValueError):
    """The ids of a corpus to embed are missing, null or not unique, so a re-run could not resume it."""


class QuantizationError(MetaEOLError, ValueError):
    """The int8 mode cannot run as asked: an unknown mode, weights that are not float32, or a non-CPU device."""
