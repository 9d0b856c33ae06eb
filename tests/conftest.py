"""Test-session isolation: telemetry off, private caches and service homes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="cosec-tests-"))

# Set before any test imports mlflow / prefect / ray / dvc / huggingface.
_ENV = {
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "RAY_USAGE_STATS_ENABLED": "0",
    "DVC_NO_ANALYTICS": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "PREFECT_HOME": str(_SESSION_HOME / "prefect"),
    "MLFLOW_TRACKING_URI": f"sqlite:///{_SESSION_HOME / 'mlflow.db'}",
    "HF_HOME": str(_SESSION_HOME / "hf"),
    "XDG_CACHE_HOME": str(_SESSION_HOME / "cache"),
}
for _key, _value in _ENV.items():
    os.environ.setdefault(_key, _value)

import pytest  # noqa: E402
import torch  # noqa: E402

# The tiny models gain nothing from intra-op threads, and on a loaded 2-core machine the thread
# pool oversubscribes badly (a 70 ms forward was seen taking 24 s). One thread keeps tests steady.
torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def session_home() -> Path:
    return _SESSION_HOME


@pytest.fixture(scope="session")
def loopback_namespace() -> list[str]:
    """Command prefix that runs a shell command in a private network namespace with only `lo` up.

    Ray opens ports on every interface; here it may only ever see loopback. Skips when the
    namespace cannot be made (no unshare/ip, or not permitted).
    """
    import shutil
    import subprocess

    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip(
            "Ray runs only in a loopback-only namespace: needs util-linux 'unshare' and iproute2 'ip'"
        )
    probe = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a private network namespace: {probe.stderr.strip()[:200]}")
    return ["unshare", "-n", "sh", "-c"]
