"""The package's layout rules: every module says what it is for, and no module imports another
that (directly or through others) imports it back -- imports inside functions included."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "recakit"
NAMED_MODULE = re.compile(r"recakit(\.\w+)+(:\w+)?")


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = ["recakit", *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def recakit_imports(tree: ast.AST, name: str, is_package: bool, known: set[str]) -> set[str]:
    """Every recakit module `tree` imports anywhere (module level, functions, classes), and every
    module it names in a string of its own ("recakit.x.y" or "recakit.x.y:attribute", as registries
    name what `import_module` loads later). `from recakit.x import y` counts as recakit.x.y where
    that is a module, else recakit.x."""
    found = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [
                f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module for alias in node.names
            ]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and NAMED_MODULE.fullmatch(node.value):
            targets = [node.value.partition(":")[0]]
        for target in targets:
            # `import recakit.toy.model` also imports recakit.toy; count the deepest known module
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != "recakit" and target != name:
                found.add(target)
    return found


def import_graph(root: Path = PACKAGE) -> tuple[dict[str, set[str]], dict[str, ast.Module]]:
    paths = sorted(root.rglob("*.py"))
    known = {module_name(path, root) for path in paths}
    trees, graph = {}, {}
    for path in paths:
        name = module_name(path, root)
        trees[name] = ast.parse(path.read_text(), str(path))
        graph[name] = recakit_imports(trees[name], name, path.name == "__init__.py", known)
    return graph, trees


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A list of modules that import each other in a circle, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if state.get(other) == "open":
                return stack[stack.index(other) :] + [other]
            if other not in state:
                cycle = visit(other)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_package_has_no_import_cycle():
    graph, _ = import_graph()
    assert len(graph) > 20
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_module_states_its_purpose():
    _, trees = import_graph()
    missing = [name for name, tree in trees.items() if not (ast.get_docstring(tree) or "").strip()]
    assert not missing, f"modules without a docstring: {missing}"


@pytest.mark.parametrize("planted", ["module level", "in a function", "named in a registry"])
def test_a_planted_cycle_is_found(tmp_path, planted):
    package = tmp_path / "recakit"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text('"""root"""\n')
    (package / "sub" / "__init__.py").write_text('"""sub"""\n')
    (package / "a.py").write_text('"""a"""\nfrom recakit.sub import b\n')
    body = {
        "module level": "from recakit.a import thing\n",
        "in a function": "def f():\n    from recakit import a\n",
        "named in a registry": 'MAKERS = {"a": "recakit.a:Thing"}\n',
    }[planted]
    (package / "sub" / "b.py").write_text('"""b"""\n' + body)
    graph, _ = import_graph(package)
    assert find_cycle(graph) in (
        ["recakit.a", "recakit.sub.b", "recakit.a"],
        ["recakit.sub.b", "recakit.a", "recakit.sub.b"],
    )
