"""Checks on the project's own files: install lists agree, the README commands are the ones CI runs."""
import re
from pathlib import Path

import pytest
import yaml

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = set(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        declared |= set(extra)
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = [d for d in env["dependencies"] if isinstance(d, str)]
    python_pin = next(d for d in conda_pins if d.startswith("python"))
    assert python_pin.removeprefix("python") == project["requires-python"]
    listed = {line for line in pip_section if not line.startswith("-e")}
    assert listed == declared, (
        f"only in environment.yml: {sorted(listed - declared)}; only in pyproject.toml: {sorted(declared - listed)}")
    assert {_name(r) for r in listed} >= {"torch", "transformers", "diffusers", "accelerate", "ipywidgets",
                                           "matplotlib", "nbval", "papermill", "bitsandbytes", "jupyterlab"}


def _quick_start_commands(readme: Path) -> list[str]:
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", readme.read_text(), flags=re.S)
    return [line for line in blocks[0].splitlines() if line and not line.startswith("#")]


def test_readmes_open_with_the_same_two_commands_and_ci_runs_the_test_one():
    commands_en = _quick_start_commands(ROOT / "README.md")
    commands_zh = _quick_start_commands(ROOT / "README_zh.md")
    assert len(commands_en) == 2 and commands_en == commands_zh
    ci_script = (ROOT / ".ci" / "run").read_text()
    assert commands_en[1] in ci_script.splitlines()
    assert "reproduce --preset toy" in commands_en[0]
