"""The ``metaeol`` command: encode texts, export a model folder, evaluate, list the presets."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from metaeol_integrations.cli.evaluate import add_eval_commands
from metaeol_integrations.cli.serve import add_serve_command
from metaeol_integrations.cli.usage import UsageError
from metaeol_integrations.cli.options import add_recipe_options, add_runtime_options, load_options
from metaeol_integrations.errors import MetaEOLError
from metaeol_integrations.postprocessing.center import CENTER_MODES
from metaeol_integrations.presets import DEFAULT_PRESET, PRESETS, Preset

PROGRESS_THRESHOLD = 32  # inputs; below this a progress bar is noise


def _add_model_options(parser: argparse.ArgumentParser, with_model: bool = True) -> None:
    if with_model:
        parser.add_argument("--model", default=DEFAULT_PRESET, help=f"preset, model folder or .gguf file (default: {DEFAULT_PRESET})")
    add_recipe_options(parser)
    add_runtime_options(parser)


def _load_model(args: argparse.Namespace, dtype: str | None = None):
    """The model of ``args``; ``dtype`` is the default when --dtype is not given (None: load()'s own, auto)."""
    from metaeol_integrations.loading import load, with_default_dtype

    options = load_options(args)
    if dtype is not None:
        options["model_kwargs"] = with_default_dtype(options["model_kwargs"], dtype)
    return load(args.model, device=args.device, **options)


def _read_texts(args: argparse.Namespace, stdin: TextIO) -> list[str]:
    texts = list(args.texts)
    if args.file == "-" or (not args.file and not texts and not stdin.isatty()):
        texts.extend(line.rstrip("\n") for line in stdin)
    elif args.file:
        try:
            with open(args.file, encoding="utf-8") as handle:
                texts.extend(line.rstrip("\n") for line in handle)
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            raise UsageError(
                f"cannot read --file {args.file!r} ({reason}). Fix: give an existing UTF-8 text file with one text "
                "per line, or '-' for stdin."
            ) from error
    return texts


def _print_similarity(texts: Sequence[str], embeddings: Any, out: TextIO) -> None:
    import numpy as np

    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True).clip(min=1e-12)
    matrix = unit @ unit.T
    labels = [text if len(text) <= 40 else text[:37] + "..." for text in texts]
    out.write("cosine similarity\n")
    for index, label in enumerate(labels):
        out.write(f"[{index}] {label}\n")
    out.write("     " + "".join(f"{f'[{i}]':>8}" for i in range(len(texts))) + "\n")
    for i, row in enumerate(matrix):
        out.write(f"{f'[{i}]':<5}" + "".join(f"{value:8.4f}" for value in row) + "\n")


def _write_embeddings(texts: Sequence[str], embeddings: Any, output: str | None, out: TextIO) -> None:
    import numpy as np

    if output and output.endswith(".npy"):
        np.save(output, embeddings)
        return
    handle = open(output, "w", encoding="utf-8") if output else out
    try:
        for text, vector in zip(texts, embeddings):
            handle.write(json.dumps({"text": text, "embedding": [float(x) for x in vector]}) + "\n")
    finally:
        if output:
            handle.close()


def cmd_encode_ray(args: argparse.Namespace, out: TextIO) -> int:
    if not args.file or args.file == "-" or args.texts:
        raise UsageError("--ray needs the input as --file PATH (a parquet file/folder or .jsonl). Fix: pass --file.")
    if not args.output or args.output.endswith((".npy", ".jsonl")):
        raise UsageError("with --ray, --output must be a folder (parquet parts are written into it). Fix: pass --output DIR.")
    import ray

    from metaeol_integrations.distributed import RayEmbedConfig, embed_files

    config = RayEmbedConfig(
        model=args.model, load_kwargs=load_options(args), text_column=args.text_column, id_column=args.id_column,
        num_actors=args.num_actors, num_cpus_per_actor=args.cpus_per_actor, encode_batch_size=args.batch_size,
        normalize=args.normalize, **({"batch_size": args.commit_rows} if args.commit_rows else {}),
    )
    ray.init(address=args.ray_address, ignore_reinit_error=True,
             logging_level=logging.INFO if args.verbose else logging.ERROR)
    summary = embed_files(args.file, args.output, config, show_progress=not args.quiet)
    out.write(
        f"embedded {summary.rows_embedded} rows ({summary.rows_per_second:.1f} rows/s) into {summary.files_written} "
        f"new parquet file(s) in {summary.output_dir}; skipped {summary.rows_already_done} rows committed by earlier "
        f"runs; {summary.rows_already_done + summary.rows_embedded} of {summary.rows_total} done\n"
    )
    return 0


def cmd_encode(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    if args.ray:
        return cmd_encode_ray(args, out)
    texts = _read_texts(args, stdin)
    if not texts:
        raise UsageError("no input texts. Fix: give them as arguments, with --file PATH, or on stdin.")
    if args.output and not args.output.endswith((".npy", ".jsonl")):
        raise UsageError(f"--output {args.output!r} must end in .npy or .jsonl. Fix: rename it, e.g. vectors.npy.")
    model = _load_model(args)
    if args.verbose:
        print(f"model: {model[0]!r}", file=sys.stderr)
    embeddings = model.encode(
        texts,
        batch_size=args.batch_size,
        normalize_embeddings=args.normalize,
        show_progress_bar=len(texts) >= PROGRESS_THRESHOLD and not args.quiet,
        convert_to_numpy=True,
    )
    if args.similarity:
        _print_similarity(texts, embeddings, out)
    if args.output or not args.similarity:
        _write_embeddings(texts, embeddings, args.output, out)
    if args.output:
        print(f"wrote {len(texts)} embeddings of size {embeddings.shape[1]} to {args.output}", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    from metaeol_integrations.loading import export

    options = {key: value for key, value in load_options(args).items() if value is not None}
    folder = export(args.name, args.output_dir, weights=args.weights, device=args.device, revision=args.revision,
                    **options)
    config = json.loads((Path(folder) / "metaeol_config.json").read_text(encoding="utf-8"))
    kind = ("weightless: loads the base model " + repr(config["base_model"]) + " through the hub cache"
            if config.get("weights") == "reference" else "with the LLM's weights")
    out.write(
        f"wrote {folder} ({kind})\nload it with: SentenceTransformer({str(folder)!r}, trust_remote_code=True), or "
        "push the folder to the hub and load it by id\n"
    )
    return 0


def cmd_fit_center(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    from metaeol_integrations.loading import save
    from metaeol_integrations.postprocessing import add_embed_filter, fit_center

    texts = [text for text in _read_texts(args, stdin) if text.strip()]
    if not texts:
        raise UsageError("no documents to fit on. Fix: --file FILE with one document per line (or '-' for stdin).")
    if args.limit and len(texts) > args.limit:
        import random

        texts = random.Random(args.seed).sample(texts, args.limit)
    model = _load_model(args, dtype="float32")  # a saved folder keeps the exact float32 weights unless --dtype says
    if args.embed_filter is not None:
        add_embed_filter(model, args.embed_filter)
    fit_center(model, texts, batch_size=args.batch_size, show_progress_bar=not args.quiet, mode=args.mode)
    folder = save(model, args.output_dir, weights=args.weights)
    out.write(f"wrote {folder}: {args.model} with its mean over {len(texts)} documents removed"
              + (f" after EmbedFilter (tau {args.embed_filter})" if args.embed_filter is not None else "") + "\n")
    return 0


def _methods_label(preset: Preset) -> str:
    """Token Prepending / Contrastive Prompting / chunking / EmbedFilter of a preset in the CLI's notation, '-' if none."""
    recipe, parts = preset.recipe, []
    if recipe.token_prepending is not None:
        parts.append(f"TP {recipe.token_prepending.start},{recipe.token_prepending.exit}")
    if recipe.contrastive is not None:
        cp = recipe.contrastive
        parts.append(f"CP {cp.layer},{cp.mode},{cp.alpha:g}")
    if recipe.chunk_tokens is not None:
        parts.append(f"chunks {recipe.chunk_tokens}")
    if preset.embed_filter is not None:
        parts.append(f"EmbedFilter d/{preset.embed_filter}")
    if preset.center is not None:
        parts.append(f"shipped centering ({preset.center[1]})")
    return " + ".join(parts) or "-"


def cmd_info(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    rows = [("name", "base model", "templates", "layer", "methods", "offline", "description")]
    for preset in PRESETS.values():
        rows.append(
            (preset.name, preset.base_model_label, preset.recipe.templates.name,
             "set's own" if preset.recipe.layer is None else str(preset.recipe.layer), _methods_label(preset),
             "yes" if preset.runs_offline else "no", preset.description)
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1] + "\n")
    out.write(f"\ndefault: {DEFAULT_PRESET}\n")
    from metaeol_integrations.core.precision import CPU_MATRIX_FLAGS, auto_precision, cpu_flags

    flags = ", ".join(cpu_flags(CPU_MATRIX_FLAGS)) or "none"
    out.write(f"this machine: --dtype auto computes in {auto_precision(args.device).describe()}; "
              f"CPU matrix-unit flags: {flags}\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metaeol",
        description="MetaEOL sentence embeddings from decoder-only LLMs (Lei et al., ACL 2024).",
    )
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also show the libraries' own output (weight-loading bars, load reports, Ray start-up)")
    commands = parser.add_subparsers(dest="command", required=True)

    encode = commands.add_parser("encode", help="embed texts", description="Embed texts with a MetaEOL model.")
    encode.add_argument("texts", nargs="*", help="texts to embed (or use --file, or pipe them on stdin)")
    encode.add_argument("--file", help="read one text per line from this file ('-' for stdin)")
    encode.add_argument("--output", "-o", help="write embeddings to a .npy or .jsonl file (default: JSONL on stdout); with --ray, a folder")
    encode.add_argument("--similarity", action="store_true", help="print the cosine similarity matrix of the texts")
    encode.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")
    encode.add_argument("--batch-size", type=int, default=16, help="texts per batch (each is K prompts; default 16)")
    encode.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_model_options(encode)
    scale = encode.add_argument_group("Ray (extra `ray`): embed a parquet/JSONL corpus with an actor pool")
    scale.add_argument("--ray", action="store_true",
                       help="embed --file (parquet file/folder or .jsonl) on Ray into the parquet folder --output; "
                       "every finished batch is committed at once, so a re-run after a kill embeds only the rest; "
                       "shows rows committed / total, rows/s and time left (not with -q); each actor uses its GPU "
                       "when it has one, --device is not used (docs/scaling.md)")
    scale.add_argument("--ray-address", help="cluster address (default: a local Ray instance, or RAY_ADDRESS)")
    scale.add_argument("--num-actors", type=int, default=1, help="models running in parallel, one per actor (default 1)")
    scale.add_argument("--cpus-per-actor", type=float, default=1.0,
                       help="CPUs each actor reserves (default 1); actors must leave one CPU free for reading/writing")
    scale.add_argument("--commit-rows", type=int,
                       help="rows per committed parquet file (default 256): smaller loses less to a kill, larger "
                       "has less overhead per file")
    scale.add_argument("--text-column", default="text", help="input column holding the text (default: text)")
    scale.add_argument("--id-column", default="id", help="input column holding a unique id (default: id)")
    encode.set_defaults(handler=cmd_encode)

    export = commands.add_parser(
        "export", help="write a SentenceTransformer folder (weightless or with weights) and its model card",
        description="Write a SentenceTransformer folder with a model card (README.md) that "
        "SentenceTransformer(DIR, trust_remote_code=True) loads; push it to the hub to load it by id.",
    )
    export.add_argument("name", help="preset, hub id (base LLM or shared MetaEOL model), model folder or .gguf file")
    export.add_argument("output_dir", help="folder to write")
    export.add_argument("--weights", choices=("reference", "copy"),
                        help="reference: no weights, the folder names the base model's hub id (default for hub "
                        "bases; written offline without loading anything); copy: the LLM's weights as safetensors "
                        "(default for local and packaged GGUF bases)")
    export.add_argument("--revision", help="hub revision of a hub-id NAME (recorded in a weightless folder)")
    _add_model_options(export, with_model=False)
    export.set_defaults(handler=cmd_export)

    center = commands.add_parser(
        "fit-center", help="fit corpus mean removal on your documents and save the model with it",
        description="Embed a sample of your documents, store their mean vector in a CorpusCenter module after the "
        "MetaEOL module (optionally after EmbedFilter) and save the model folder; queries and documents embedded "
        "with the saved model have that mean removed (docs/retrieval.md).",
    )
    center.add_argument("output_dir", help="folder to write")
    center.add_argument("texts", nargs="*", help="documents (or use --file, or pipe them on stdin)")
    center.add_argument("--file", help="read one document per line from this file ('-' for stdin)")
    center.add_argument("--limit", type=int, default=2000, help="fit on a seeded sample of at most N documents "
                        "(default 2000; 0 = all)")
    center.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    center.add_argument("--embed-filter", type=int, metavar="TAU",
                        help="add EmbedFilter (middle d/TAU singular band of the unembedding) before centering")
    center.add_argument("--mode", choices=CENTER_MODES, default="subtract",
                        help="subtract the mean (default) or project out the mean's direction")
    center.add_argument("--weights", choices=("reference", "copy"), help="how to store the LLM (as for export)")
    center.add_argument("--batch-size", type=int, default=16, help="texts per batch (default 16)")
    center.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_model_options(center)
    center.set_defaults(handler=cmd_fit_center)

    add_eval_commands(commands, DEFAULT_PRESET)
    add_serve_command(commands, DEFAULT_PRESET)

    info = commands.add_parser("info", help="list the presets and this machine's precision",
                               description="List the named presets, and the dtype --dtype auto picks here.")
    info.add_argument("--device", help="the device whose auto dtype to show (default: best available)")
    info.set_defaults(handler=cmd_info)
    return parser


def _quiet_libraries(verbose: bool) -> None:
    """Keep transformers' and huggingface_hub's bars and load reports out of the CLI's output unless -v (set both
    ways: ``main`` may run several times in one process)."""
    import huggingface_hub.utils
    import transformers

    if verbose:
        transformers.utils.logging.set_verbosity_warning()
        transformers.utils.logging.enable_progress_bar()
        huggingface_hub.utils.enable_progress_bars()
    else:
        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        huggingface_hub.utils.disable_progress_bars()


def main(argv: Sequence[str] | None = None, stdin: TextIO | None = None, out: TextIO | None = None) -> int:
    """Entry point of the ``metaeol`` console script. Errors end in one line on stderr: exit status 2 for bad input
    (usage, unknown model, bad settings), 1 for files that cannot be written or read."""
    args = build_parser().parse_args(argv)
    _quiet_libraries(args.verbose)
    command = f"metaeol {args.command}"
    try:
        return args.handler(args, stdin or sys.stdin, out or sys.stdout)
    except UsageError as error:
        print(f"{command}: {error}", file=sys.stderr)
        return 2
    except (MetaEOLError, TypeError) as error:
        print(f"{command}: {type(error).__name__}: {_one_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:
        where = f" {str(error.filename)!r}" if error.filename else ""
        print(f"{command}: cannot use{where}: {error.strerror or error}. Fix: check the path exists and that you may "
              "write to it.", file=sys.stderr)
        return 1


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


if __name__ == "__main__":
    sys.exit(main())
