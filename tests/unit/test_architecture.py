"""The dependency rule of DESIGN.md, checked on the source: a broken rule fails here."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSITION_ROOT = {"cli.py", "runtime.py", "__main__.py"}
# Everything directly in carebox/ is a pure rule module except these, which wire, store or serve.
NOT_PURE = {
    "__init__", "__main__", "cli", "runtime", "pipeline", "models", "metrics", "clocks", "escalation", "scheduler",
    "incidents", "fanout", "health", "leader", "triage_pool", "web_processes",
}
PURE = tuple(sorted(p.stem for p in (ROOT / "carebox").glob("*.py") if p.stem not in NOT_PURE))
PURE_LIBRARIES = {"holidays", "textblob", "textblob_fr", "py3langid", "icalendar"}
IO_MODULES = {"socket", "asyncio", "aiohttp", "sqlite3", "subprocess", "urllib", "http", "requests", "sqlalchemy",
              "sqlmodel", "shutil"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in ("carebox", "connectors", "web"):
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            else:
                names.add(node.module)
    return names


def _carebox_modules() -> list[Path]:
    return sorted((ROOT / "carebox").rglob("*.py"))


@pytest.mark.parametrize("path", _carebox_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_carebox_never_imports_web_or_connectors_outside_the_composition_root(path):
    if path.name in COMPOSITION_ROOT and path.parent.name == "carebox":
        return
    bad = {n for n in _imports(path) if n.split(".")[0] in ("web", "connectors")}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("name", PURE)
def test_pure_rule_modules_import_only_the_standard_library_each_other_and_their_one_library(name):
    path = ROOT / "carebox" / f"{name}.py"
    for imported in _imports(path):
        top = imported.split(".")[0]
        if top == "carebox":
            assert imported.split(".")[1] in PURE, f"carebox/{name}.py imports {imported}"
        else:
            assert top in sys.stdlib_module_names or top in PURE_LIBRARIES, f"carebox/{name}.py imports {imported}"
            assert top not in IO_MODULES, f"carebox/{name}.py imports {imported}, an I/O module"


@pytest.mark.parametrize("path", sorted((ROOT / "connectors").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_connectors_use_only_ports_and_errors_of_carebox(path):
    for imported in _imports(path):
        parts = imported.split(".")
        assert parts[0] != "web", f"{path.relative_to(ROOT)} imports {imported}"
        if parts[0] == "carebox" and len(parts) > 1:
            assert parts[1] in ("ports", "errors", "duration", "alerting", "calendar"), f"{path.relative_to(ROOT)} imports {imported}"


def test_the_rule_is_checked_on_a_known_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from web.app import create_app\nimport connectors.social.x\n")
    assert {"web.app", "connectors.social.x"} <= _imports(bad)
