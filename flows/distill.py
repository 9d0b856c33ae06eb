"""Prefect orchestration of the DVC pipeline: one task per DVC stage, each run as a subprocess.

The flow holds no modelling logic: it asks DVC for the stages a target needs, in
dependency order, and runs `dvc repro --single-item STAGE` for each, so DVC's cache still
decides what actually reruns. Deployments (phase1, phase2, full, ablation) live in
prefect.yaml at the project root.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import networkx as nx
from prefect import flow, get_run_logger, task

# what each deployment runs: the stages behind these targets (DVC addresses)
TARGETS: dict[str, list[str]] = {
    "phase1": ["phase1"],
    "phase2": ["phase2"],
    "full": ["report"],  # the main pipeline, synthetic data to report
    "ablation": ["ablation/dvc.yaml:report"],  # the ladder (stages in ablation/dvc.yaml)
}


def stage_order(project_dir: str | Path, targets: list[str] | None) -> list[str]:
    """Stage names needed for `targets` (all stages if None), dependencies first."""
    from dvc.repo import Repo

    with Repo(str(project_dir)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        by_name = {stage.addressing: stage for stage in graph.nodes}
        if targets is None:
            wanted = set(graph.nodes)
        else:
            unknown = [t for t in targets if not any(n == t or n.startswith(t + "@") for n in by_name)]
            if unknown:
                raise ValueError(
                    f"dvc.yaml in {project_dir} has no stage named {unknown}; it has {sorted(by_name)}"
                )
            roots = {s for n, s in by_name.items() for t in targets if n == t or n.startswith(t + "@")}
            wanted = set(roots)
            for root in roots:
                wanted |= nx.descendants(graph, root)
        upstream_first = graph.subgraph(wanted).reverse(copy=True)
        ordered = nx.lexicographical_topological_sort(upstream_first, key=lambda s: s.addressing)
        return [stage.addressing for stage in ordered]


def stage_env(base: dict | None = None) -> dict:
    """The environment of a DVC stage run by the worker: this interpreter's folder first on PATH.

    dvc.yaml's commands say `python stages/...`; a worker started as `.venv/bin/prefect worker start`
    from a plain shell would otherwise run them with whatever `python` PATH finds first.
    """
    env = dict(os.environ if base is None else base)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(
        [bin_dir, *[p for p in env.get("PATH", "").split(os.pathsep) if p and p != bin_dir]]
    )
    env["TQDM_MININTERVAL"] = (
        "30"  # progress bars redraw with carriage returns: log them every 30 s, as lines
    )
    return env


@task(name="dvc-stage", task_run_name="{stage}")
def run_stage(stage: str, project_dir: str, force: bool = False) -> str:
    logger = get_run_logger()
    cmd = [sys.executable, "-m", "dvc", "repro", "--single-item", stage] + (["--force"] if force else [])
    logger.info("running %s in %s", " ".join(cmd[1:]), project_dir)
    env = stage_env()
    with subprocess.Popen(
        cmd, cwd=project_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        for line in proc.stdout:
            line = line.rstrip().rsplit("\r", 1)[-1]
            if line:
                logger.info(line)
    if proc.returncode != 0:
        raise RuntimeError(f"DVC stage {stage!r} failed with exit code {proc.returncode} (see the log above)")
    return stage


@flow(name="distill", log_prints=True)
def distill(target: str = "phase2", project_dir: str = ".", force: bool = False) -> list[str]:
    """Run the DVC stages behind `target` (a deployment name from TARGETS, or a stage name)."""
    targets = TARGETS[target] if target in TARGETS else [target]
    project_dir = str(Path(project_dir).resolve())
    stages = stage_order(project_dir, targets)
    get_run_logger().info("stages to run: %s", stages)
    done = []
    for stage in stages:
        # force applies to the requested stages only: upstream stays cached
        done.append(run_stage(stage, project_dir, force=force and stage.split("@")[0] in targets))
    return done


if __name__ == "__main__":
    distill(target=sys.argv[1] if len(sys.argv) > 1 else "phase2")
