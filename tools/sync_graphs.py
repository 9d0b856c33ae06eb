"""Rewrite the code deps of every DVC graph from each stage script's import closure.

    python tools/sync_graphs.py          # rewrite every graph: dvc.yaml, {reproduce,ablation,real,seeds}/dvc.yaml
    python tools/sync_graphs.py --check  # exit 1 and list the stages whose code deps are not the closure

A stage's code deps are the project Python files (or whole folders of them) its script imports, transitively
(tests/pipeline/import_closure.py computes them; tests/pipeline/test_graph.py checks them). Everything else in a
stage's deps (data, model folders, non-Python files such as split lists) is kept as written, in its order. Edits
are line-based so comments and layout survive.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GRAPHS = (
    "dvc.yaml",
    "reproduce/dvc.yaml",
    "ablation/dvc.yaml",
    "real/dvc.yaml",
    "seeds/dvc.yaml",
    "shipped/dvc.yaml",
)

_spec = importlib.util.spec_from_file_location("import_closure", REPO / "tests/pipeline/import_closure.py")
ic = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ic)

STAGE = re.compile(r"^  ([A-Za-z0-9_@-]+):\s*$")
SCRIPT = re.compile(r"python\s+(stages/[A-Za-z0-9_]+\.py)")
ITEM = re.compile(r"^(\s+)- (\S+)\s*(#.*)?$")


def _is_code(dep: str) -> bool:
    """A .py file, or a folder holding Python files: what the closure decides. Split lists and data are not."""
    path = REPO / dep
    if dep.endswith(".py"):
        return True
    return path.is_dir() and any(path.rglob("*.py"))


def _stage_blocks(lines: list[str]) -> list[tuple[str, int, int]]:
    """(name, first line, end line) of each stage under `stages:`."""
    starts = [(m.group(1), i) for i, line in enumerate(lines) if (m := STAGE.match(line))]
    return [
        (name, i, starts[k + 1][1] if k + 1 < len(starts) else len(lines))
        for k, (name, i) in enumerate(starts)
    ]


def sync(text: str) -> tuple[str, list[str]]:
    """The graph text with every stage's code deps replaced by its closure, and the names of the stages changed."""
    lines = text.splitlines()
    out: list[str] = []
    changed: list[str] = []
    pos = 0
    for name, start, end in _stage_blocks(lines):
        out.extend(lines[pos:start])
        block = lines[start:end]
        script = next((m.group(1) for line in block if (m := SCRIPT.search(line))), None)
        if script is None or not any(line.strip() == "deps:" for line in block):
            out.extend(block)
            pos = end
            continue
        deps = ic.minimal_deps(ic.closure(REPO / script))
        new: list[str] = []
        item_indent = (
            None  # set inside the deps list (`deps:` of a plain stage, or of a foreach stage's `do:`)
        )
        have: list[str] = []
        want: list[str] = []
        for line in block:
            if line.strip() == "deps:":
                item_indent = " " * (len(line) - len(line.lstrip()) + 2)
                want = [f"{item_indent}- {d}" for d in deps]
                new.append(line)
                new.extend(want)
                continue
            if item_indent is not None:
                m = ITEM.match(line)
                if m and m.group(1) == item_indent and _is_code(m.group(2)):
                    have.append(line)
                    continue
                if not (m and m.group(1) == item_indent):
                    item_indent = None
            new.append(line)
        if have != want:
            changed.append(name)
        out.extend(new)
        pos = end
    out.extend(lines[pos:])
    return "\n".join(out) + ("\n" if text.endswith("\n") else ""), changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stages whose code deps drifted")
    args = parser.parse_args(argv)
    stale = 0
    for graph in GRAPHS:
        path = REPO / graph
        if not path.is_file():
            continue
        text = path.read_text()
        new, changed = sync(text)
        for name in changed:
            print(
                f"{graph}: {name}: code deps {'differ from' if args.check else 'rewritten to'} the import closure"
            )
        stale += len(changed)
        if changed and not args.check:
            path.write_text(new)
    return 1 if (stale and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
