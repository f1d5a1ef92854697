"""Checks on the project's own files: install lists agree, the README commands are the ones CI runs."""

import importlib.util
import re
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        declared += extra
    return [Requirement(line) for line in declared]


def _locked() -> dict[str, str]:
    """requirements.lock as {canonical name: version}."""
    lines = [line for line in LOCK.read_text().splitlines() if line and not line.startswith("#")]
    bad = [line for line in lines if not re.fullmatch(r"[A-Za-z0-9._-]+==[0-9][0-9A-Za-z.!]*", line)]
    assert not bad, f"not an exact name==version pin (or a build-specific one, like +cpu): {bad}"
    pins = dict(line.split("==") for line in lines)
    locked = {canonicalize_name(name): version for name, version in pins.items()}
    assert len(locked) == len(lines), "a package is locked twice"
    return locked


def test_the_lock_pins_every_declared_requirement_to_a_version_pyproject_allows():
    locked = _locked()
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement.name} is declared in pyproject.toml but not locked"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"requirements.lock pins {name}=={locked[name]}, outside pyproject.toml's {requirement}"
        )
    assert {"torch", "transformers", "bitsandbytes", "numpy", "pytest"} <= set(locked)


def test_the_lock_holds_exactly_what_the_declared_requirements_pull_in():
    """Walks the requirements through the installed packages' metadata, so it can only run in
    the locked environment (the one setup.sh builds by default, and CI runs)."""
    locked = _locked()
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    differ = sorted(
        name for name, version in locked.items() if Version(installed.get(name, "0")).public != Version(version).public
    )
    if differ:
        pytest.skip(f"this environment is not the locked one ({len(differ)} packages differ, e.g. {differ[:3]})")
    pulled, todo = set(), _declared()  # pulled: (name, extras) already walked
    while todo:
        requirement = todo.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in pulled:
            continue
        pulled.add(key)
        extras = [""] + sorted(requirement.extras)
        for line in metadata.requires(requirement.name) or []:
            needed = Requirement(line)
            if needed.marker is None or any(needed.marker.evaluate({"extra": extra}) for extra in extras):
                todo.append(needed)
    names = {name for name, _ in pulled}
    assert names == set(locked), (
        f"pulled in but not locked: {sorted(names - set(locked))}; locked but unused: {sorted(set(locked) - names)}"
    )


def test_environment_yml_installs_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip_section == ["-r requirements.lock", "-e ."]
    python_pin = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python_pin == "python=3.11"  # the Python the lock was made with
    requires_python = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires_python).contains("3.11")


def test_the_versions_the_readmes_name_are_the_locked_ones():
    locked = _locked()
    for readme in ("README.md", "README_zh.md"):
        named = re.findall(r"`([A-Za-z0-9._-]+)==([^`]+)`", (ROOT / readme).read_text())
        assert len(named) >= 5, readme
        for name, version in named:
            assert locked.get(canonicalize_name(name)) == version, f"{readme} names {name}=={version}"


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


def _colab_org() -> str:
    """notebooks/build.py's COLAB_ORG, the organisation every Colab link of the notebooks uses."""
    spec = importlib.util.spec_from_file_location("_notebook_build", ROOT / "notebooks" / "build.py")
    cells = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cells)
    return cells.COLAB_ORG


def test_readme_colab_badges_use_the_notebooks_organisation_and_open_existing_notebooks():
    org = _colab_org()
    notebooks = {path.relative_to(ROOT).as_posix() for path in ROOT.glob("notebooks/*/*.ipynb")}
    assert notebooks
    for readme in ("README.md", "README_zh.md"):
        text = (ROOT / readme).read_text()
        urls = re.findall(r"https://colab\.research\.google\.com/github/[^)\s]*", text)
        assert urls, f"{readme} has no Colab badge"
        opened = set()
        for url in urls:
            match = re.fullmatch(
                r"https://colab\.research\.google\.com/github/([^/]+)/([^/]+)/blob/main/(.+\.ipynb)", url
            )
            assert match, f"{readme}: not a Colab link to a notebook on main: {url}"
            owner, repo, path = match.groups()
            assert (owner, repo) == (org, "recakit"), f"{readme}: {url} is not under {org}/recakit (notebooks/build.py)"
            assert path in notebooks, f"{readme}: {url} opens {path}, which is not a notebook here"
            opened.add(path)
        assert opened == notebooks, f"{readme} has no badge for {sorted(notebooks - opened)}"


def test_both_readme_file_trees_name_every_module():
    # The tree is how a newcomer finds their way in: a module missing from it is one nobody reads.
    modules = {path.name for path in (ROOT / "recakit").rglob("*.py") if path.name != "__init__.py"}
    for readme in ("README.md", "README_zh.md"):
        text = (ROOT / readme).read_text(encoding="utf-8")
        missing = [name for name in sorted(modules) if not re.search(rf"\b{re.escape(name)}\b", text)]
        assert not missing, f"{readme}'s file tree lacks {missing}"


def _github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_between_the_project_s_markdown_files_land_on_a_file_and_a_heading():
    pages = [ROOT / "README.md", ROOT / "README_zh.md", *sorted((ROOT / "docs").glob("*.md"))]
    pages.append(ROOT / "benchmarks" / "README.md")
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor:
                headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), flags=re.M)
                if anchor not in {_github_anchor(heading) for heading in headings}:
                    broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken
