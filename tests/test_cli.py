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


def test_encode_prints_a_similarity_matrix(tiny_model_dir):
    code, out = run(["encode", "--model", str(tiny_model_dir), "--similarity", "a cat", "a dog", "a car"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "cosine similarity"
    diagonal = [float(line.split()[1 + i]) for i, line in enumerate(lines[-3:])]
    assert diagonal == pytest.approx([1.0, 1.0, 1.0], abs=1e-4)


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


def test_bad_output_suffix_and_no_input_exit_with_a_message(tiny_model_dir):
    with pytest.raises(SystemExit, match="npy or .jsonl"):
        run(["encode", "--model", str(tiny_model_dir), "x", "-o", "out.csv"])
    with pytest.raises(SystemExit, match="no input texts"):
        run(["encode", "--model", str(tiny_model_dir)])


def test_help_names_every_command():
    help_text = build_parser().format_help()
    for command in ["encode", "export", "info"]:
        assert command in help_text


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
