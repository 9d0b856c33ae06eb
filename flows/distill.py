"""Prefect orchestration of the DVC pipeline: one task per DVC stage, each run as a subprocess.

The flow holds no modelling logic: it asks DVC for the stages a target needs, in
dependency order, and runs `dvc repro --single-item STAGE` for each, so DVC's cache still
decides what actually reruns. Deployments (phase1, phase2, full, ablation) live in
prefect.yaml at the project root. A stage that fails ends its task and the flow Failed with the
stage's own error line as the state message (logged at ERROR), not with a traceback of the flow.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import networkx as nx
from prefect import flow, get_run_logger, task
from prefect.states import Failed

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

    # DVC addresses stages relative to the working directory: name them as `dvc repro` in the project does
    with contextlib.chdir(project_dir), Repo(str(project_dir)) as repo:
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


# the one line a stage entry point prints for a user error (cosec/pipeline/entry.py), and DVC's own
_STAGE_ERROR = re.compile(r"^[\w.@-]+: (error: |interrupted|stopped by signal)")
_DVC_ERROR = re.compile(r"^ERROR: ")


def failure_message(stage: str, returncode: int, lines: list[str]) -> str:
    """What a failed stage said, for the task's and the flow's state: its error line, else DVC's."""
    said = [ln for ln in lines if _STAGE_ERROR.match(ln)] or [ln for ln in lines if _DVC_ERROR.match(ln)]
    detail = said[-1] if said else "no error line; see the log above"
    return f"DVC stage {stage!r} failed (exit code {returncode}): {detail}"


@task(name="dvc-stage", task_run_name="{stage}")
def run_stage(stage: str, project_dir: str, force: bool = False):
    logger = get_run_logger()
    cmd = [sys.executable, "-m", "dvc", "repro", "--single-item", stage] + (["--force"] if force else [])
    logger.info("running %s in %s", " ".join(cmd[1:]), project_dir)
    env = stage_env()
    lines: list[str] = []
    with subprocess.Popen(
        cmd, cwd=project_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        for line in proc.stdout:
            line = line.rstrip().rsplit("\r", 1)[-1]
            if line:
                lines.append(line)
                loud = _STAGE_ERROR.match(line) or _DVC_ERROR.match(line)
                logger.log(logging.ERROR if loud else logging.INFO, line)
    if proc.returncode != 0:
        return Failed(message=failure_message(stage, proc.returncode, lines))  # a state: no traceback
    return stage


@flow(name="distill", log_prints=True)
def distill(target: str = "phase2", project_dir: str = ".", force: bool = False) -> list[str]:
    """Run the DVC stages behind `target` (a deployment name from TARGETS, or a stage name)."""
    logger = get_run_logger()
    targets = TARGETS[target] if target in TARGETS else [target]
    project_dir = str(Path(project_dir).resolve())
    try:
        stages = stage_order(project_dir, targets)
    except ValueError as err:  # an unknown target
        logger.error(str(err))
        return Failed(message=str(err))
    logger.info("stages to run: %s", stages)
    done = []
    for stage in stages:
        # force applies to the requested stages only: upstream stays cached
        state = run_stage(
            stage, project_dir, force=force and stage.split("@")[0] in targets, return_state=True
        )
        if state.is_failed():
            logger.error(state.message)
            return Failed(message=state.message)
        done.append(state.result())
    return done


if __name__ == "__main__":
    final = distill(target=sys.argv[1] if len(sys.argv) > 1 else "phase2", return_state=True)
    sys.exit(0 if final.is_completed() else 1)
