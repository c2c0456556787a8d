"""Paper-style tables (stdout / Markdown), JSON results and the sweep plots."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from metaeol_integrations.evaluation.data import STS_TASKS, TRANSFER_TASKS
from metaeol_integrations.evaluation.evaluator import TaskResult

SHORT_NAMES = {"STSBenchmark": "STS-B", "SICKRelatedness": "SICK-R", "SST2": "SST-2"}


def file_slug(text: str) -> str:
    """A run label as a file-name stem (what ``metaeol eval`` names its output files with)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "results"


def run_label(model: str, options: Mapping[str, Any], *, pooling: str = "last-token", dtype: str | None = None,
              embed_filter: int | None = None, center: str | None = None, layer: int | None = None) -> str:
    """The default label of an evaluation run: the model, then each option that changes the vectors, in one notation
    (the CLI's and the scripts'). ``options`` are ``load`` keywords (recipe options, None: not set)."""
    parts = [Path(model).name if Path(model).exists() else model]
    templates = options.get("templates")
    if pooling == "mean":
        parts.append("mean pooling")
    elif templates:
        parts.append(str(templates) if isinstance(templates, str) else "custom templates")
    if options.get("readout") == "slot-mean":
        parts.append("slot mean")
    if options.get("chunk_tokens"):
        parts.append(f"chunks of {options['chunk_tokens']} tokens")
    if embed_filter:
        parts.append(f"EmbedFilter tau {embed_filter}")
    if center:
        parts.append("centered on " + ("corpus" if center == "corpus" else Path(center).name))
    query = (options.get("task_templates") or {}).get("query")
    if query:
        parts.append("queries " + (query if isinstance(query, str) else "custom templates"))
    tp = options.get("token_prepending")
    if tp:
        parts.append("TP" if tp is True else f"TP {tp[0]}-{tp[1]}")
    cp = options.get("contrastive")
    if cp:
        parts.append("CP" if cp is True else "CP " + "-".join(str(v) for v in cp.values()))
    if options.get("quantize"):
        parts.append(options["quantize"])
    if dtype not in (None, "float32"):  # the evaluation's default is float32
        parts.append(str(dtype))
    if layer is not None:
        parts.append(f"layer {layer}")
    return ", ".join(parts)


def _short(task: str) -> str:
    return SHORT_NAMES.get(task, task)


def table_rows(results: Sequence[TaskResult], kind: str) -> tuple[list[str], list[str]]:
    """Header and one row (score, N) in the paper's column order, with the average."""
    order = STS_TASKS if kind == "sts" else TRANSFER_TASKS
    by_task = {r.task: r for r in results if r.kind == kind}
    tasks = [t for t in order if t in by_task]
    header = [_short(t) for t in tasks] + ["avg"]
    scores = [by_task[t].score for t in tasks]
    cells = [f"{s:.2f}" for s in scores] + ([f"{sum(scores) / len(scores):.2f}"] if scores else [])
    return header, cells


def markdown_table(rows: Mapping[str, Sequence[TaskResult]], kind: str) -> str:
    """One Markdown table, one line per method; a second line per method gives N (and the 95% interval for STS)."""
    lines: list[str] = []
    header: list[str] = []
    for label, results in rows.items():
        row_header, cells = table_rows(results, kind)
        if not header:
            header = row_header
            lines += ["| method | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detail_table(results: Sequence[TaskResult]) -> str:
    """Per-task details: score, 95% bootstrap interval (STS), N of the total, protocol and time."""
    lines = ["| task | score | 95% CI | N / total | protocol | seconds |", "|---|---|---|---|---|---|"]
    for r in results:
        interval = f"[{r.ci_low:.1f}, {r.ci_high:.1f}]" if r.ci_low is not None else "-"
        lines.append(
            f"| {_short(r.task)} | {r.score:.2f} | {interval} | {r.n:,} / {r.n_total:,} | {r.protocol} | {r.seconds:.0f} |"
        )
    return "\n".join(lines)


def text_table(results: Sequence[TaskResult]) -> str:
    """The stdout summary: an STS block and a transfer block, each with N."""
    blocks = []
    for kind in ("sts", "transfer"):
        header, cells = table_rows(results, kind)
        if not cells:
            continue
        width = max(7, *(len(h) + 1 for h in header))
        ns = [str(r.n) for t in (STS_TASKS if kind == "sts" else TRANSFER_TASKS) for r in results
              if r.kind == kind and r.task == t]
        blocks.append("".join(h.rjust(width) for h in header))
        blocks.append("".join(c.rjust(width) for c in cells))
        blocks.append("".join(f"N={n}".rjust(width) for n in ns))
    return "\n".join(blocks)


def write_results(out_dir: str | os.PathLike, stem: str, results: Sequence[TaskResult], meta: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``stem.json`` (every field) and ``stem.md`` (tables) into ``out_dir``."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / f"{stem}.json", folder / f"{stem}.md"
    json_path.write_text(
        json.dumps({"meta": dict(meta), "results": [r.to_dict() for r in results]}, indent=2), encoding="utf-8"
    )
    label = str(meta.get("label", meta.get("model", "model")))
    parts = [f"# {label}", "", "Settings: " + ", ".join(f"{k}={v}" for k, v in meta.items() if k != "label"), ""]
    for kind, title in (("sts", "STS (Spearman x100)"), ("transfer", "Transfer (accuracy x100)")):
        if any(r.kind == kind for r in results):
            parts += [f"## {title}", "", markdown_table({label: results}, kind), ""]
    parts += ["## Details", "", detail_table(results), ""]
    md_path.write_text("\n".join(parts), encoding="utf-8")
    return json_path, md_path


def plot_curve(
    path: str | os.PathLike, x: Sequence[float], series: Mapping[str, Sequence[float]], xlabel: str, title: str,
    xticklabels: Sequence[str] | None = None,
) -> Path:
    """A line plot (one line per series) saved as PNG with matplotlib's non-interactive backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for name, values in series.items():
        axis.plot(list(x), list(values), marker="o", markersize=3, label=name)
    axis.set_xlabel(xlabel)
    axis.set_ylabel("Spearman x100")
    axis.set_title(title)
    if xticklabels is not None:
        axis.set_xticks(list(x))
        axis.set_xticklabels(list(xticklabels), rotation=30, ha="right")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)


# The paper's LLaMA2-7B numbers (Spearman / accuracy x100), from ../shared/docs/metaeol-reference.md.
PAPER_STS = {
    "LLaMA2-7B MetaEOL (paper)": [64.16, 81.61, 73.09, 81.11, 78.94, 77.96, 74.86],
    "LLaMA2-7B PromptEOL (paper)": [58.81, 77.01, 66.34, 73.22, 73.56, 71.66, 69.64],
    "LLaMA2-7B mean pooling (paper)": [35.49, 53.15, 40.12, 55.35, 53.26, 42.10, 49.96],
}
PAPER_TRANSFER = {"LLaMA2-7B PromptEOL (paper)": [90.63, 92.87, 96.32, 91.19, 95.00, 95.40, 75.19]}


def paired_comparisons(result_files: Sequence[str | os.PathLike], resamples: int = 1000, seed: int = 0,
                       baseline: str | os.PathLike | None = None) -> list:
    """Every pair of runs that scored the same STS pairs (same tasks, same sampled indices), compared with the
    paired bootstrap; runs of different samples are never paired. Order: the files' order within each group.
    With ``baseline`` (one of the files), only each other run against it (other run as A, baseline as B)."""
    from itertools import combinations

    from metaeol_integrations.evaluation.compare import read_run_predictions
    from metaeol_integrations.evaluation.paired import paired_bootstrap

    groups: dict[tuple, list[tuple[str, list, bool]]] = {}
    for path in result_files:
        label, predictions = read_run_predictions(path)
        if predictions:
            key = tuple((p.task, p.indices.tobytes()) for p in predictions)
            is_baseline = baseline is not None and Path(path).resolve() == Path(baseline).resolve()
            groups.setdefault(key, []).append((label, predictions, is_baseline))
    if baseline is None:
        pairs = [(a, b) for runs in groups.values() for a, b in combinations(runs, 2)]
    else:
        pairs = [(run, base) for runs in groups.values() for base in runs if base[2] for run in runs if not run[2]]
    return [paired_bootstrap(a[1], b[1], a[0], b[0], resamples=resamples, seed=seed) for a, b in pairs]


def paired_summary_table(comparisons: Sequence) -> str:
    """Markdown, one line per compared pair: the averages, A - B with its paired interval, and the verdict."""
    lines = ["| A | B | tasks (N per task) | A avg | B avg | A - B | paired 95% CI | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for c in comparisons:
        ns = "/".join(sorted({str(t.n) for t in c.tasks}))
        verdict = c.verdict() if c.average.excludes_zero else "no difference shown"
        lines.append(
            f"| {c.label_a} | {c.label_b} | {len(c.tasks)} ({ns}) | {c.average.score_a:.2f} | {c.average.score_b:.2f} "
            f"| {c.average.difference:+.2f} | [{c.average.ci_low:+.2f}, {c.average.ci_high:+.2f}] | {verdict} |"
        )
    return "\n".join(lines)


def combined_tables(result_files: Sequence[str | os.PathLike]) -> str:
    """Markdown STS and transfer tables over several ``metaeol eval`` JSON files, with the paper's rows, N and
    wall time per run."""
    runs = []
    for path in result_files:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        runs.append((record["meta"], [TaskResult(**r) for r in record["results"]]))
    parts = []
    for kind, order, paper in (("sts", STS_TASKS, PAPER_STS), ("transfer", TRANSFER_TASKS, PAPER_TRANSFER)):
        header = [_short(t) for t in order] + ["avg", "N per task", "wall time"]
        lines = ["| method | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
        for meta, results in runs:
            by_task = {r.task: r for r in results if r.kind == kind}
            if not by_task:
                continue
            scores = [by_task[t].score if t in by_task else None for t in order]
            ns = sorted({r.n for r in by_task.values()})
            seconds = sum(r.seconds for r in by_task.values())
            # A run of some tasks only (e.g. full STS-B) gets no average: it would not be comparable to the others.
            average = f"{sum(scores) / len(scores):.2f}" if None not in scores else "-"
            cells = ["-" if s is None else f"{s:.2f}" for s in scores] + [
                average, "/".join(str(n) for n in ns), f"{seconds / 60:.0f} min"]
            lines.append(f"| {meta['label']} | " + " | ".join(cells) + " |")
        for label, scores in paper.items():
            cells = [f"{s:.2f}" for s in scores] + [f"{sum(scores) / len(scores):.2f}", "full", "-"]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)
