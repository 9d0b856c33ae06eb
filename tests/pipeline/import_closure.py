"""The project files a Python file imports, transitively, within the repository (module and function-level imports)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _module_file(name: str) -> Path | None:
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_inits(name: str) -> list[Path]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py too."""
    parts = name.split(".")
    out = []
    for i in range(1, len(parts)):
        f = REPO.joinpath(*parts[:i], "__init__.py")
        if f.is_file():
            out.append(f)
    return out


def _resolve(base: str, level: int, file: Path) -> str:
    if not level:
        return base
    pkg = list(file.relative_to(REPO).with_suffix("").parts)
    pkg = pkg[:-1] if pkg[-1] != "__init__" else pkg[:-1]
    pkg = pkg[: len(pkg) - (level - 1)]
    return ".".join(pkg + ([base] if base else []))


@cache
def lazy_map(init: Path) -> dict[str, str]:
    """A package's ``lazy_exports(__name__, {name: ".module"})`` map (cosec/_lazy.py), absolute module names."""
    package = ".".join(init.parent.relative_to(REPO).parts)
    for node in ast.walk(ast.parse(init.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy_exports":
            names = ast.literal_eval(node.args[1])
            return {k: package + v for k, v in names.items()}
    return {}


@cache
def direct_imports(file: Path) -> frozenset[Path]:
    found: set[Path] = set()
    tree = ast.parse(file.read_text(), str(file))
    skipped = {  # `if TYPE_CHECKING:` blocks never run
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If)
        and getattr(block.test, "id", getattr(block.test, "attr", None)) == "TYPE_CHECKING"
        for stmt in block.body
        for n in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module or "", node.level, file)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            target = _module_file(name)
            if target is None and "." in name:  # from package import Name: a lazy export?
                parent, attr = name.rsplit(".", 1)
                init = _module_file(parent)
                if init is not None and init.name == "__init__.py" and attr in lazy_map(init):
                    target = _module_file(lazy_map(init)[attr])
            if target is not None:
                found.add(target)
                found.update(_package_inits(name))
    return frozenset(found)


def closure(file: Path) -> set[Path]:
    """``file`` and every repository file it imports, transitively."""
    seen = {file}
    todo = [file]
    while todo:
        for dep in direct_imports(todo.pop()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def script_of(cmd: str) -> Path | None:
    """The stage script a dvc.yaml command runs (``python [dir/]stages/x.py ...``)."""
    for word in cmd.split():
        if word.endswith(".py") and "stages/" in word:
            return REPO / "stages" / Path(word).name
    return None


def uncovered(files: set[Path], deps: list[str], root: Path = REPO) -> list[str]:
    """The files (relative to the repository) that no dependency path (file or folder, relative to root) covers."""
    covered = [(root / d).resolve() for d in deps]
    missing = []
    for f in sorted(files):
        f = f.resolve()
        if not any(f == c or c in f.parents for c in covered):
            missing.append(str(f.relative_to(REPO)))
    return missing


def minimal_deps(files: set[Path]) -> list[str]:
    """The shortest dependency list covering ``files``: a folder where every .py file in it is needed."""
    rel = {f.relative_to(REPO) for f in files}
    out: list[str] = []
    folders = sorted({p.parent for p in rel if p.parent != Path(".")}, key=lambda p: len(p.parts))
    whole: set[Path] = set()
    for folder in folders:
        if any(folder == w or w in folder.parents for w in whole):
            continue
        every = {p.relative_to(REPO) for p in (REPO / folder).rglob("*.py")}
        if every and every <= rel:
            whole.add(folder)
    for folder in sorted(whole):
        out.append(str(folder))
    for p in sorted(rel):
        if not any(w in p.parents for w in whole):
            out.append(str(p))
    return out


if __name__ == "__main__":  # print each stage script's deps, ready for dvc.yaml
    for script in sorted((REPO / "stages").glob("*.py")):
        print(f"{script.stem}:")
        for dep in minimal_deps(closure(script)):
            print(f"  - {dep}")
