"""Every benchmark and script still imports and answers --help (they are run by hand, so nothing else would notice
when a change breaks one); every shell script parses. Their index is benchmarks/README.md and scripts/README.md."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYTHON_TOOLS = sorted([*(REPO / "benchmarks").glob("*.py"), *(REPO / "scripts").glob("*.py")])
SHELL_TOOLS = sorted([*(REPO / "benchmarks").glob("*.sh"), *(REPO / "scripts").glob("*.sh")])


@pytest.mark.parametrize("path", PYTHON_TOOLS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_python_tool_imports_and_answers_help(path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(path.parent))
    spec = importlib.util.spec_from_file_location(f"tool_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", [str(path), "--help"])
    with pytest.raises(SystemExit) as stopped:
        module.main()
    assert stopped.value.code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("path", SHELL_TOOLS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_shell_tool_parses(path):
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0


@pytest.mark.parametrize("folder", ["benchmarks", "scripts"])
def test_the_index_names_every_tool(folder):
    index = (REPO / folder / "README.md").read_text(encoding="utf-8")
    for path in [*PYTHON_TOOLS, *SHELL_TOOLS]:
        if path.parent.name == folder:
            assert path.name in index, f"{folder}/README.md does not describe {path.name}"
