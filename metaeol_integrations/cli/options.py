"""The model options every ``metaeol`` command accepts, written once: recipe options and where the LLM runs.

``add_recipe_options`` adds one flag per :class:`~metaeol_integrations.Recipe` option; ``recipe_options`` turns the
parsed flags back into ``load`` keywords (None: not given, so the preset's or folder's value stays).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from metaeol_integrations.core.quantization import QUANTIZE_MODES
from metaeol_integrations.core.recipe import READOUTS, Recipe
from metaeol_integrations.core.templates import BUILTIN_TEMPLATE_SETS, TemplateSet
from metaeol_integrations.errors import TemplateError


def parse_layers(value: str) -> int | list[int]:
    """``-1`` or ``20,24``: one layer or layers to average."""
    parts = [int(part) for part in value.split(",") if part.strip()]
    return parts[0] if len(parts) == 1 else parts


def parse_token_prepending(value: str) -> bool | list[int]:
    """``on``: the published range; ``1,7``: start,exit."""
    if value == "on":
        return True
    try:
        start, exit_ = (int(part) for part in value.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not 'on' or START,EXIT. Fix: e.g. --token-prepending 1,7 (0-based decoder layers, EXIT "
            "exclusive)."
        ) from error
    return [start, exit_]


def parse_contrastive(value: str) -> bool | dict[str, Any]:
    """``on``: the published PromptEOL setting; ``6,ns,3`` / ``6,nr``: layer,mode,alpha."""
    if value == "on":
        return True
    parts = value.split(",")
    try:
        config: dict[str, Any] = {"layer": int(parts[0])}
        if len(parts) > 1:
            config["mode"] = parts[1]
        if len(parts) > 2:
            config["alpha"] = float(parts[2])
        if len(parts) > 3:
            raise ValueError(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not 'on' or LAYER[,ns|nr[,ALPHA]]. Fix: e.g. --contrastive 6,ns,3 (0-based decoder layer)."
        ) from error
    return config


def parse_templates(value: str) -> Any:
    """A built-in set name, an ensemble such as ``metaeol+ke``, or a JSON file of templates."""
    if value in BUILTIN_TEMPLATE_SETS:
        return value
    if "+" in value and not Path(value).is_file():
        try:
            TemplateSet.coerce(value)  # an ensemble such as metaeol+ke: checked here, built by load()
            return value
        except TemplateError as error:
            raise argparse.ArgumentTypeError(str(error)) from error
    path = Path(value)
    if path.is_file():
        try:
            with path.open(encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError) as error:
            raise argparse.ArgumentTypeError(
                f"cannot read the template file {value!r} ({error}). Fix: write it as JSON, "
                '{"meta_task": ["... \\"{sentence}\\" ... in one word:\\"", ...]} or a list of templates.'
            ) from error
    raise argparse.ArgumentTypeError(
        f"{value!r} is neither a built-in template set ({', '.join(BUILTIN_TEMPLATE_SETS)}) nor a JSON file."
    )


TEMPLATES_HELP = ("metaeol (default), prompteol, pcot, ke, ck, retrieval-document, retrieval-query, "
                  "metaeol-textfirst / metaeol-textfirst-short / ke-textfirst (text before the instructions: the "
                  "text is computed once), an ensemble joined by '+' (e.g. metaeol+ke), or a JSON file "
                  "{meta_task: [template, ...]}")


def add_recipe_options(parser: argparse.ArgumentParser, layer: bool = True) -> None:
    """One flag per recipe option. ``layer=False`` for the evaluation commands, whose ``--layer`` (``view_layer``)
    picks a layer of the one cached pass instead."""
    group = parser.add_argument_group("recipe (what the model computes; default: the preset's or folder's)")
    group.add_argument("--templates", type=parse_templates, help=TEMPLATES_HELP)
    group.add_argument("--query-templates", type=parse_templates, metavar="TEMPLATES",
                       help="templates for queries (encode_query) only, e.g. retrieval-query; --templates then "
                       "applies to documents and every other text")
    if layer:
        group.add_argument("--layer", type=parse_layers, help="output layer, or comma-separated layers to average; "
                           "-1 = last (write negative lists as --layer=-2,-1)")
    group.add_argument("--max-seq-length", type=int,
                       help="longest prompt in tokens (the text is truncated inside its slot)")
    group.add_argument("--no-prefix-cache", dest="prefix_cache", action="store_false", default=None,
                       help="run every prompt whole instead of reusing the template prefixes' keys/values")
    group.add_argument("--max-tokens-per-forward", type=int, metavar="N",
                       help="cap on tokens in one forward call (default 8192; lower bounds memory)")
    group.add_argument("--chunk-tokens", type=int, metavar="N",
                       help="chunked pooling: embed a text longer than N tokens as windows of N tokens, each "
                       "prompted, and average their vectors (docs/retrieval.md)")
    group.add_argument("--readout", choices=READOUTS,
                       help="what a prompt's vector is read from: the last token (default) or the mean over the text's "
                       "own tokens inside the prompt (mean pooling with a prompt; docs/retrieval.md)")
    group.add_argument("--token-prepending", type=parse_token_prepending, metavar="on|START,EXIT",
                       help="Token Prepending: copy the last token's state into a placeholder before the sentence "
                       "before decoder layers START..EXIT-1 ('on': 1,7, the published LLaMA2-7B range)")
    group.add_argument("--contrastive", type=parse_contrastive, metavar="on|LAYER[,ns|nr[,ALPHA]]",
                       help="Contrastive Prompting: subtract an 'irrelevant information' prompt's attention output "
                       "at decoder LAYER (0-based) from the last token's; ns scales by ALPHA (default 2), nr keeps "
                       "the norm ('on': 4,ns,2, the published PromptEOL setting)")
    group.add_argument("--quantize", choices=QUANTIZE_MODES,
                       help="int8 (experimental): int8 Linear layers on the CPU, faster; vectors differ slightly "
                       "from float32 (docs/performance.md); default: exact float32")


def add_runtime_options(parser: argparse.ArgumentParser) -> None:
    """Where and in which precision the LLM runs."""
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16", "auto"),
                        help="auto (the default of encode, export, fit-center and serve: bfloat16 where this "
                        "hardware runs it faster, else float32; `metaeol info` shows the choice), float32 (exact; the "
                        "default of eval, sweep and tune), bfloat16 or float16 (16-bit attention and MLP blocks, "
                        "float32 residual stream and norms)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: best available)")


# Recipe options whose flag has another destination: --query-templates TEMPLATES is task_templates={"query": ...}.
FLAG_OF_OPTION = {"task_templates": "query_templates"}


def recipe_options(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe flags as ``load`` keywords (None: not given), one per :meth:`Recipe.option_names`."""
    options = {name: getattr(args, FLAG_OF_OPTION.get(name, name), None) for name in Recipe.option_names()}
    query = options["task_templates"]
    options["task_templates"] = {"query": query} if query is not None else None
    return options


def load_options(args: argparse.Namespace) -> dict[str, Any]:
    """Every model flag as ``load`` keywords, the device aside."""
    return {**recipe_options(args), "model_kwargs": {"dtype": args.dtype} if args.dtype else None}
