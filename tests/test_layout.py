"""The source tree as docs/layout.md shows it: every folder of the package with its one-line purpose
and every module with its own; imports that run only down that list (no circle, none back up a layer); each config
group's code in one folder; and functions short enough to read at once."""

import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vae_runner"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60  # a guideline a reader can hold at once; the body of one function, docstring included


def layout_block() -> str:
    return (ROOT / "docs" / "layout.md").read_text().split("```text\n", 1)[1].split("```", 1)[0]


def listed() -> list[str]:
    """The package's folders (`training/`) and modules (`training/trainer.py`) in the Layout's order, each with a
    purpose written beside it."""
    return [m.group(1) for m in re.finditer(r"^  (\S+(?:\.py|/))\s+\S", layout_block(), re.M)]


def modules() -> dict[str, Path]:
    """Every module with code in it (a package __init__ holding only a docstring is not one)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        body = ast.parse(path.read_text()).body
        if path.name == "__init__.py" and all(isinstance(n, ast.Expr) for n in body):
            continue
        out[str(path.relative_to(PACKAGE))] = path
    return out


def folders() -> set[str]:
    """The package's sub-packages (`model/`, `model/priors/`)."""
    return {f"{p.parent.relative_to(PACKAGE)}/" for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE}


def layer(module: str) -> str:
    """What a module belongs to in the Layout: its top folder (`model/` for model/priors/mog.py) or itself."""
    return module.split("/")[0] + "/" if "/" in module else module


def imports(path: Path) -> set[str]:
    """The vae_runner modules a file imports, at its top and inside functions (lazy imports count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vae_runner"):
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("vae_runner")]
        else:
            continue
        for name in names:
            parts = name.split(".")[1:]
            for candidate in ("/".join(parts) + ".py", "/".join(parts) + "/__init__.py"):
                if (PACKAGE / candidate).is_file():
                    found.add(candidate)
    return found - {str(path.relative_to(PACKAGE))}


def test_the_readme_lists_every_folder_and_module_and_only_those_that_exist():
    shown = set(listed())
    code = set(modules()) | folders()
    assert not code - shown, f"add to docs/layout.md: {sorted(code - shown)}"
    assert not shown - code, f"docs/layout.md lists what does not exist: {sorted(shown - code)}"


def test_every_folder_and_module_says_what_it_holds():
    for init in PACKAGE.rglob("__init__.py"):
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init.relative_to(ROOT)}: say what the folder holds"
    for name, path in modules().items():
        source = path.read_text()
        assert ast.get_docstring(ast.parse(source)), f"{name} has no docstring saying what lives there"
        assert len(source.splitlines()) <= MAX_FILE_LINES, f"{name} has {len(source.splitlines())} lines"


def test_functions_are_short_enough_to_read_at_once():
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{name}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, f"split these into pieces of at most {MAX_FUNCTION_LINES} lines: {long}"


def test_imports_run_down_the_layout_and_never_round_a_circle():
    order = {}
    for entry in listed():
        order.setdefault(layer(entry), len(order))
    graph = {name: imports(path) for name, path in modules().items()}
    graph.update({f"{f}__init__.py": imports(PACKAGE / f / "__init__.py") for f in folders()})
    up = [
        f"{a} -> {b}"
        for a, targets in graph.items()
        for b in targets
        if layer(a) != layer(b) and order[layer(b)] < order[layer(a)] and a != "__init__.py"
    ]
    assert not up, f"imports that run back up the Layout's order: {up}"
    state: dict[str, int] = {}

    def circle_from(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state and (found := circle_from(nxt, path + [node])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            assert (circle := circle_from(start, [])) is None, f"an import circle: {' -> '.join(circle)}"


def group_targets() -> dict[str, set[str]]:
    """config group -> the vae_runner modules its options' `_target_`s name (torch's own classes left out)."""
    out: dict[str, set[str]] = {}
    for option in (ROOT / "configs").glob("*/*.yaml"):
        text = option.read_text()
        for target in re.findall(r"_target_:\s*(vae_runner\.\S+)", text):
            out.setdefault(option.parent.name, set()).add(target.rsplit(".", 1)[0])
    return out


def test_each_config_group_has_its_code_in_one_folder():
    for group, targets in group_targets().items():
        homes = {str(Path(*t.split(".")[1:]).parent) for t in targets}
        assert len(homes) == 1, f"configs/{group}/ builds classes from several folders: {sorted(targets)}"
    callbacks = yaml.safe_load((ROOT / "configs" / "train.yaml").read_text())["hydra"]["callbacks"]
    assert {c["_target_"].split(".")[1] for c in callbacks.values()} == {"sweeps"}
