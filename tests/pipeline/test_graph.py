"""The DVC graphs against the code: every stage's deps cover the files its script imports, its params are
exactly the sections it may read, the reproduce graph is the main one, and the layering holds."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest
import yaml

from cosec.pipeline.stages import STAGES

from .import_closure import REPO, closure, direct_imports, script_of, uncovered

GRAPHS = (
    "dvc.yaml",
    "reproduce/dvc.yaml",
    "ablation/dvc.yaml",
    "real/dvc.yaml",
    "seeds/dvc.yaml",
    "shipped/dvc.yaml",
)


def _stages(graph: str) -> dict[str, dict]:
    """name -> stage definition, with `foreach` expanded (items substituted in cmd and outs)."""
    doc = yaml.safe_load((REPO / graph).read_text())
    out = {}
    for name, stage in doc["stages"].items():
        if "foreach" in stage:
            for item in _resolve(graph, doc, stage["foreach"]):
                text = yaml.safe_dump(stage["do"]).replace("${item}", str(item))
                out[f"{name}@{item}"] = yaml.safe_load(text)
        else:
            out[name] = stage
    return out


def _resolve(graph: str, doc: dict, value):
    """A `${section.key}` of the graph's `vars` files (paths relative to the graph, `FILE:section` allowed)."""
    if not (isinstance(value, str) and value.startswith("${") and value.endswith("}")):
        return value
    found = {}
    for entry in doc.get("vars", []):
        file = entry.split(":")[0]
        found.update(yaml.safe_load(((REPO / graph).parent / file).read_text()))
    for key in value[2:-1].split("."):
        found = found[key]
    return found


def _sections(stage: dict) -> set[str]:
    found = set()
    for entry in stage.get("params", []):
        if isinstance(entry, dict):  # {params_file: [sections]}
            for sections in entry.values():
                found |= set(sections)
        else:
            found.add(entry)
    return found


def _all_stages():
    return [(g, n, s) for g in GRAPHS for n, s in _stages(g).items()]


@pytest.mark.parametrize(
    ("graph", "name", "stage"), _all_stages(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_deps_cover_every_file_the_stage_imports(graph, name, stage):
    script = script_of(stage["cmd"])
    assert script is not None and script.is_file(), f"{graph}:{name}: no stage script in {stage['cmd']!r}"
    root = (REPO / graph).parent / stage.get("wdir", ".")
    missing = uncovered(closure(script), stage.get("deps", []), root=root)
    assert not missing, (
        f"{graph}:{name} imports files its deps do not list: {missing}\n"
        "run `python tools/sync_graphs.py` (it rewrites every graph's code deps from the import closure)"
    )


@pytest.mark.parametrize(
    ("graph", "name", "stage"), _all_stages(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_params_are_exactly_the_sections_the_stage_reads(graph, name, stage):
    script = script_of(stage["cmd"])
    spec = STAGES[script.stem]
    assert _sections(stage) == set(spec.sections), f"{graph}:{name}"


def test_the_check_fails_when_an_import_has_no_dependency(tmp_path):
    """What the deps test sees if someone adds `import cosec.eval.report` to the synth stage's module."""
    synth = _stages("dvc.yaml")["synth"]
    grown = tmp_path / "synth_stage.py"
    source = (REPO / "cosec/pipeline/synth.py").read_text().replace("from .", "from cosec.pipeline.")
    grown.write_text(source + "\nimport cosec.eval.report\n")
    files = (closure(REPO / "stages/synth.py") - {REPO / "cosec/pipeline/synth.py"}) | closure(grown)
    missing = uncovered(files - {grown}, synth["deps"])
    assert "cosec/eval/report.py" in missing
    assert not uncovered(closure(REPO / "stages/synth.py"), synth["deps"])  # today's graph is complete


def test_function_level_and_lazy_package_imports_are_followed(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def g():\n    from cosec.models import ChampModel\n")
    assert REPO / "cosec/models/champ.py" in direct_imports(f)
    f2 = tmp_path / "y.py"
    f2.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import cosec.eval.runner\n")
    assert REPO / "cosec/eval/runner.py" not in direct_imports(f2)


def test_reproduce_graph_is_the_main_graph_under_reproduce():
    main, repro = _stages("dvc.yaml"), _stages("reproduce/dvc.yaml")
    assert list(main) == list(repro)
    for name, stage in main.items():
        other = repro[name]
        assert other["cmd"] == stage["cmd"].replace("params.yaml", "reproduce/params.yaml"), name
        code = [d for d in stage["deps"] if d.startswith(("cosec", "stages"))]
        # the released teacher is the main graph's input only: reproduce trains its own (import_dir: null)
        data = [d for d in stage["deps"] if d not in code and d != RELEASE]
        assert [d for d in other["deps"] if d.startswith(("cosec", "stages"))] == code, name
        assert [d for d in other["deps"] if not d.startswith(("cosec", "stages"))] == [
            f"reproduce/{d}" for d in data
        ]
        assert _sections(other) == _sections(stage), name


RELEASE = "shipped/teacher"


def test_shipped_graph_trains_the_release_the_main_graph_imports():
    """shipped/dvc.yaml: the main graph's data and teacher stages under shipped/, its teacher committed to git
    and no stage's output; the main graph's teacher imports exactly that folder and depends on it; reproduce
    trains its own."""
    main, shipped = _stages("dvc.yaml"), _stages("shipped/dvc.yaml")
    assert list(shipped) == ["synth", "frames", "guidance", "index", "teacher"]
    for name, stage in shipped.items():
        assert stage["cmd"] == main[name]["cmd"].replace("params.yaml", "shipped/params.yaml"), name
        code = [d for d in main[name]["deps"] if d.startswith(("cosec", "stages"))]
        assert [d for d in stage["deps"] if d.startswith(("cosec", "stages"))] == code, name
    # not a DVC output: the main graph's `dvc repro` must import it, never rebuild the shipped graph
    assert "outs" not in shipped["teacher"]
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert params["teacher"]["import_dir"] == RELEASE
    assert RELEASE in main["teacher"]["deps"]
    assert yaml.safe_load((REPO / "reproduce/params.yaml").read_text())["teacher"]["import_dir"] is None
    release = yaml.safe_load((REPO / "shipped/params.yaml").read_text())
    assert release["teacher"]["out"] == RELEASE and release["teacher"].get("import_dir") is None
    # the run that imports it must build the same model
    assert release["common"]["model"] == params["common"]["model"]


def test_real_graph_runs_the_main_graphs_scripts_under_real():
    """real/dvc.yaml: the main graph's code deps for each script it shares, params from real/params.yaml, every
    output under real/, and the user's folder a dependency (never an output: DVC must not delete it)."""
    main, real = _stages("dvc.yaml"), _stages("real/dvc.yaml")
    assert list(real) == ["ingest", "frames", "guidance", "index", "evaluate", "report"]
    code = lambda st: [d for d in st["deps"] if d.startswith(("cosec", "stages"))]  # noqa: E731
    for name, stage in real.items():
        assert (
            stage["wdir"] == ".." and stage["cmd"] == f"python stages/{name}.py --params real/params.yaml"
        ), name
        assert list(stage["params"][0]) == ["real/params.yaml"], name
        if name in main:
            assert code(stage) == code(main[name]), f"real/dvc.yaml:{name}: copy dvc.yaml's code deps"
        for out in stage.get("outs", []) + stage.get("metrics", []):
            path = out if isinstance(out, str) else next(iter(out))
            assert path.startswith("real/"), (name, path)
    assert "${ingest.source}" in real["ingest"]["deps"] and "cosec/data/splits" in real["ingest"]["deps"]
    extra = set(code(real["ingest"])) - set(code(main["guidance"]))
    assert extra == {
        "cosec/data/ingest.py",
        "cosec/pipeline/ingest.py",
        "stages/ingest.py",
        "cosec/data/splits",
    }


def test_stage_scripts_are_thin_entry_points():
    for script in sorted((REPO / "stages").glob("*.py")):
        tree = ast.parse(script.read_text())
        assert not [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))], script.name
        assert len(script.read_text().splitlines()) <= 10, script.name
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert imported <= {"cosec.pipeline.entry", f"cosec.pipeline.{_module_of(script.stem)}"}, script.name


def test_seeds_graph_runs_every_seed_of_params_under_the_seeds_paths():
    """seeds/dvc.yaml: one data and one distill stage per seed of params.yaml's seeds.seeds, their outputs the
    section's paths, and the teacher an input (never an output: the study does not retrain it)."""
    from cosec.pipeline.params import load_params

    cfg = load_params(REPO / "params.yaml").seeds
    stages = _stages("seeds/dvc.yaml")
    assert list(stages) == [f"{kind}@{s}" for kind in ("data", "distill") for s in cfg.seeds] + ["report"]
    for s in cfg.seeds:
        data, distill = stages[f"data@{s}"], stages[f"distill@{s}"]
        assert data["cmd"] == f"python stages/seeds_data.py {s} --params params.yaml"
        assert data["outs"] == ["${seeds.data}/" + str(s)]
        assert {"${seeds.teacher}", f"${{seeds.data}}/{s}"} <= set(distill["deps"])
        assert [next(iter(o)) if isinstance(o, dict) else o for o in distill["outs"]] == [
            f"${{seeds.models}}/{s}",
            f"${{seeds.out}}/{s}.json",
            f"${{seeds.out}}/{s}_notes.json",
        ]
    assert "${seeds.out}" in stages["report"]["deps"]


def _module_of(stage: str) -> str:
    return {"phase1": "distill", "phase2": "distill", "ablation": "ablation"}.get(stage, stage)


def test_layering_and_no_import_circles():
    files = sorted((REPO / "cosec").rglob("*.py"))
    graph = nx.DiGraph()
    for f in files:
        for dep in direct_imports(f):
            rel = dep.relative_to(REPO)
            assert rel.parts[0] not in ("stages", "flows", "tests"), f"{f.relative_to(REPO)} imports {rel}"
            if dep != f and dep.name != "__init__.py":
                graph.add_edge(f.relative_to(REPO), rel)
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, cycles[:5]
    packages = nx.DiGraph()
    for a, b in graph.edges:
        pa, pb = Path(*a.parts[:2]), Path(*b.parts[:2])
        if pa != pb and len(a.parts) > 2 and len(b.parts) > 2:
            packages.add_edge(pa, pb)
    assert not list(nx.simple_cycles(packages)), list(nx.simple_cycles(packages))[:5]


def test_sync_tool_rewrites_code_deps_and_keeps_the_rest():
    """tools/sync_graphs.py: a stale code dep goes, the closure comes in, data deps and comments stay."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sync_graphs", REPO / "tools/sync_graphs.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    text = (
        "stages:\n"
        "  index:  \n"
        "    cmd: python stages/index.py --params params.yaml\n"
        "    deps:\n"
        "      - cosec/eval/runner.py\n"
        "      - data/prepared   # the maps\n"
        "      - cosec/data/splits\n"
        "    outs:\n"
        "      - data/index.parquet\n"
    )
    new, changed = tool.sync(text)
    assert changed == ["index"]
    stage = yaml.safe_load(new)["stages"]["index"]
    assert "cosec/eval/runner.py" not in stage["deps"]
    assert not uncovered(closure(REPO / "stages/index.py"), stage["deps"])
    assert "data/prepared" in stage["deps"] and "cosec/data/splits" in stage["deps"]
    assert "# the maps" in new and stage["outs"] == ["data/index.parquet"]
    assert tool.sync(new) == (new, [])
