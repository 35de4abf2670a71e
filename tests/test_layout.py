"""The source tree as README.md's "Layout" section shows it: every module listed with its one-line purpose, no
listed file missing, and no module too long to read in one sitting."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vae_runner"
MAX_LINES = 250


def listed() -> set[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```text\n", 1)[1].split("```", 1)[0]
    return {m.group(1) for m in re.finditer(r"^  (\S+\.py)\s+\S", block, re.M)}


def modules() -> dict[str, Path]:
    """Every module with code in it (a package __init__ holding only a docstring is not one)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        if "configs" in path.relative_to(PACKAGE).parts:
            continue
        body = ast.parse(path.read_text()).body
        if path.name == "__init__.py" and all(isinstance(n, ast.Expr) for n in body):
            continue
        out[str(path.relative_to(PACKAGE))] = path
    return out


def test_the_readme_lists_every_module_and_only_modules_that_exist():
    readme, code = listed(), set(modules())
    assert not code - readme, f"add to README.md's Layout: {sorted(code - readme)}"
    assert not readme - code, f"README.md's Layout lists files that do not exist: {sorted(readme - code)}"


def test_every_module_has_a_docstring_and_at_most_250_lines():
    for name, path in modules().items():
        source = path.read_text()
        assert ast.get_docstring(ast.parse(source)), f"{name} has no docstring saying what lives there"
        assert len(source.splitlines()) <= MAX_LINES, f"{name} has {len(source.splitlines())} lines"
