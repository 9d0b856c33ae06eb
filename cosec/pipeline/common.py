"""What the training and evaluation stages share: their MLflow run (KILLED / FAILED / FINISHED) and work folders."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from pathlib import Path

from cosec.config import to_dict
from cosec.train.config import settings_digest
from cosec.train.tracking import MLflowTracker

from .params import Common


def read_index(common: Common):
    """The frame table (a pandas DataFrame) the index stage wrote."""
    from cosec.data.index import load_index

    return load_index(common.index)


def work_dir(name: str, config: dict, inputs: list[str] = ()) -> str:
    """Checkpoint folder of a training stage, keyed by its configuration and its input models.

    A rerun after an interruption finds its checkpoints and resumes; a rerun after a change of
    params or of an upstream model starts afresh instead of resuming a stale run.
    """
    stamp = {"config": config, "inputs": {}}
    for path in inputs:
        for f in sorted(Path(path).rglob("*")) if Path(path).is_dir() else [Path(path)]:
            if f.is_file():
                st = f.stat()
                stamp["inputs"][str(f)] = [st.st_size, st.st_mtime_ns]
    return f"runs/{name}-{settings_digest(stamp, 10)}"


class StageKilled(BaseException):
    """SIGTERM arrived (``timeout``, ``kill``, a Prefect cancel): unwind and close the MLflow run as KILLED."""


def _on_sigterm(signum, frame):
    raise StageKilled(f"stopped by signal {signum}")


def close_stale_runs(common: Common, stage: str, variant: str | None = None) -> list[str]:
    """Mark FAILED the runs of this stage left RUNNING by a process that no longer exists (SIGKILL, power cut)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=common.tracking_uri())
    found = client.get_experiment_by_name(common.experiment)
    if found is None:
        return []
    query = f"attributes.status = 'RUNNING' and tags.`dvc.stage` = '{stage}'"
    if variant is not None:
        query += f" and tags.`cosec.variant` = '{variant}'"
    closed = []
    for run in client.search_runs([found.experiment_id], filter_string=query):
        tags = run.data.tags
        pid, host = tags.get("cosec.pid"), tags.get("cosec.host")
        if host == socket.gethostname() and pid and _alive(int(pid)):
            continue  # really running (another terminal)
        client.set_tag(run.info.run_id, "cosec.closed_by", "next start of the stage (its process was gone)")
        client.set_terminated(run.info.run_id, status="FAILED")
        closed.append(run.info.run_id)
    return closed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def tracked(common: Common, stage: str, params: dict, tags: dict | None = None):
    """The stage's MLflow run: FINISHED when the body returns, KILLED on SIGINT/SIGTERM, FAILED on an error."""
    close_stale_runs(common, stage, (tags or {}).get("cosec.variant"))
    run_tags = {
        "dvc.stage": stage,
        "cosec.pid": str(os.getpid()),
        "cosec.host": socket.gethostname(),
        **(tags or {}),
    }
    run = MLflowTracker(common.experiment, stage=stage, tracking_uri=common.tracking_uri(), tags=run_tags)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        run.log_params({**params, "common": to_dict(common)})
        yield run
    except (KeyboardInterrupt, StageKilled):
        run.close("KILLED")
        raise
    except BaseException:
        run.close("FAILED")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    run.close()
