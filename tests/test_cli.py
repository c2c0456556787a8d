"""The metaeol command line, run in-process on the tiny model."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from metaeol_integrations.cli.main import build_parser, main


class _Stdin(io.StringIO):
    def isatty(self) -> bool:
        return False


def run(argv, stdin_text=""):
    out = io.StringIO()
    code = main(argv, stdin=_Stdin(stdin_text), out=out)
    return code, out.getvalue()


def test_info_lists_every_preset():
    code, out = run(["info"])
    assert code == 0
    for name in ["metaeol-smollm2-135m", "metaeol-llama2-7b", "metaeol-llama2-13b", "metaeol-mistral-7b", "prompteol-llama2-7b"]:
        assert name in out


@pytest.mark.slow
def test_encode_prints_a_similarity_matrix(tiny_model_dir):
    code, out = run(["encode", "--model", str(tiny_model_dir), "--similarity", "a cat", "a dog", "a car"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "cosine similarity"
    diagonal = [float(line.split()[1 + i]) for i, line in enumerate(lines[-3:])]
    assert diagonal == pytest.approx([1.0, 1.0, 1.0], abs=1e-4)


@pytest.mark.slow
def test_encode_writes_npy_and_jsonl_from_file_and_stdin(tiny_model_dir, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("first line\nsecond line\n", encoding="utf-8")
    npy = tmp_path / "out.npy"
    assert run(["encode", "--model", str(tiny_model_dir), "--file", str(source), "-o", str(npy)])[0] == 0
    vectors = np.load(npy)
    assert vectors.shape == (2, 64)

    code, out = run(["encode", "--model", str(tiny_model_dir), "--normalize"], stdin_text="first line\nsecond line\n")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["text"] for row in rows] == ["first line", "second line"]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    np.testing.assert_allclose(np.array([row["embedding"] for row in rows]), unit, rtol=1e-5, atol=1e-6)


def test_encode_options_reach_the_model(tiny_model_dir, tmp_path):
    out_file = tmp_path / "o.jsonl"
    code, _ = run(["encode", "--model", str(tiny_model_dir), "--layer=-2,-1", "--templates", "prompteol", "x", "-o", str(out_file)])
    assert code == 0
    (row,) = [json.loads(line) for line in out_file.read_text().splitlines()]
    import metaeol_integrations

    expected = metaeol_integrations.load(str(tiny_model_dir), layer=[-2, -1], templates="prompteol").encode("x")
    default = metaeol_integrations.load(str(tiny_model_dir)).encode("x")
    np.testing.assert_allclose(row["embedding"], expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(row["embedding"], default, rtol=1e-3)


def test_errors_are_reported_without_a_traceback(capsys):
    code, _ = run(["encode", "--model", "metaeol-llama2-7", "x"])
    assert code == 2
    assert "did you mean" in capsys.readouterr().err.lower()


def _one_line_error(capsys, *needles: str) -> str:
    """The CLI's stderr: exactly one line (no traceback, no library bars), naming a fix."""
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "Fix" in err or "fix" in err or "usage" in err, err
    for needle in needles:
        assert needle in err, err
    return err


def test_bad_output_suffix_and_no_input_exit_with_a_message(tiny_model_dir, capsys):
    assert run(["encode", "--model", str(tiny_model_dir), "x", "-o", "out.csv"])[0] == 2
    _one_line_error(capsys, "npy or .jsonl")
    assert run(["encode", "--model", str(tiny_model_dir)])[0] == 2
    _one_line_error(capsys, "no input texts")


def test_missing_or_unreadable_input_file(tmp_path, capsys):
    assert run(["encode", "--file", str(tmp_path / "missing.txt")])[0] == 2
    _one_line_error(capsys, "missing.txt", "No such file")
    assert run(["encode", "--file", str(tmp_path)])[0] == 2  # a folder
    _one_line_error(capsys, "cannot read --file")
    binary = tmp_path / "latin1.txt"
    binary.write_bytes("caf\xe9\n".encode("latin-1"))
    assert run(["encode", "--file", str(binary)])[0] == 2
    _one_line_error(capsys, "UTF-8")


def test_missing_data_folder(tmp_path, capsys):
    assert run(["eval", "sts", "--data-dir", str(tmp_path / "nowhere")])[0] == 2
    _one_line_error(capsys, "DataNotFoundError", "--data-dir")


def test_bad_template_json(tiny_model_dir, tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text('{"task": ["no closing quote')
    with pytest.raises(SystemExit) as exit_info:
        run(["encode", "--model", str(tiny_model_dir), "--templates", str(broken), "x"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "cannot read the template file" in err and "Traceback" not in err
    no_slot = tmp_path / "no_slot.json"
    no_slot.write_text('{"task": ["This sentence has no slot in one word:"]}')
    assert run(["encode", "--model", str(tiny_model_dir), "--templates", str(no_slot), "x"])[0] == 2
    _one_line_error(capsys, "TemplateError", "{sentence}")


def test_unknown_task_and_unknown_preset(tiny_model_dir, capsys):
    assert run(["eval", "sts", "--tasks", "STS99"])[0] == 2
    _one_line_error(capsys, "unknown task(s) STS99", "STSBenchmark")
    assert run(["export", "metaeol-smollm3", "out"])[0] == 2
    _one_line_error(capsys, "UnknownModelError", "metaeol-smollm2-135m")


@pytest.mark.slow
def test_output_folder_that_cannot_be_written(tiny_model_dir, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert run(["export", str(tiny_model_dir), str(blocker / "model")])[0] == 1
    _one_line_error(capsys, "a-file")
    assert run(["export", "metaeol-llama2-7b", str(blocker / "model")])[0] == 1
    _one_line_error(capsys, "a-file")
    assert run(["encode", "--model", str(tiny_model_dir), "x", "-o", str(blocker / "v.npy")])[0] == 1
    _one_line_error(capsys, "a-file")


def test_bad_layer(tiny_model_dir, capsys):
    assert run(["encode", "--model", str(tiny_model_dir), "--layer", "99", "x"])[0] == 2
    _one_line_error(capsys, "LayerError")
    with pytest.raises(SystemExit) as exit_info:
        run(["encode", "--model", str(tiny_model_dir), "--layer", "last", "x"])
    assert exit_info.value.code == 2 and "Traceback" not in capsys.readouterr().err


@pytest.mark.slow
def test_library_bars_only_with_verbose(tiny_model_dir, capsys):
    assert run(["encode", "--model", str(tiny_model_dir), "x"])[0] == 0
    assert "Loading weights" not in capsys.readouterr().err
    assert run(["-v", "encode", "--model", str(tiny_model_dir), "x"])[0] == 0
    assert "Loading weights" in capsys.readouterr().err


def test_help_names_every_command():
    help_text = build_parser().format_help()
    for command in ["encode", "export", "info"]:
        assert command in help_text


@pytest.mark.slow
def test_no_prefix_cache_flag_reaches_load(tiny_model_dir, monkeypatch):
    import metaeol_integrations.loading as loading

    seen = {}
    real_load = loading.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(loading, "load", spy)
    assert run(["encode", "--model", str(tiny_model_dir), "--no-prefix-cache", "x"])[0] == 0
    assert seen["prefix_cache"] is False
    assert build_parser().parse_args(["encode", "x"]).prefix_cache is None
