"""Inside a loopback-only network namespace: a two-node Ray cluster on 127.0.0.1 (a head and a second node
process), then the phase-1 stage run once per folder given, each joining it through common.run.ray_address.

    ray_cluster_driver.py TEMP_DIR PORT FOLDER [FOLDER ...]

Each FOLDER holds a params.yaml; the stage runs there (cwd) and its output goes to FOLDER/stage.log. Before a
folder's stage starts, FOLDER/started is written, so a test outside can find that run's workers. The nodes
run under ``ray start --block`` and are stopped by their own process ids (never ``ray stop``, which stops
every Ray on the machine).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NODES_UP = "import ray, sys; ray.init(address=sys.argv[1]); print(sum(n['Alive'] for n in ray.nodes()))"


def main() -> int:
    temp, port, folders = sys.argv[1], sys.argv[2], [Path(f) for f in sys.argv[3:]]
    address = f"127.0.0.1:{port}"
    ray = str(Path(sys.executable).with_name("ray"))
    common = ["--num-cpus", "1", "--disable-usage-stats", "--temp-dir", temp, "--block"]
    nodes = [subprocess.Popen([ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", port,
                               "--include-dashboard", "false", *common])]  # fmt: skip
    try:
        time.sleep(3)
        nodes.append(subprocess.Popen([ray, "start", "--address", address, "--node-ip-address", "127.0.0.1",
                                       *common]))  # fmt: skip
        for _ in range(60):  # both nodes registered
            out = subprocess.run([sys.executable, "-c", NODES_UP, address], capture_output=True, text=True)
            if out.stdout.strip().splitlines()[-1:] == ["2"]:
                break
            time.sleep(1)
        else:
            print("the two Ray nodes did not come up", file=sys.stderr)
            return 3
        for folder in folders:
            (folder / "started").write_text("1")
            with open(folder / "stage.log", "w") as log:
                rc = subprocess.run([sys.executable, str(REPO / "stages" / "phase1.py"), "--params", "params.yaml"],
                                    cwd=folder, stdout=log, stderr=subprocess.STDOUT).returncode  # fmt: skip
            if rc != 0:
                return rc
        return 0
    finally:
        for node in reversed(nodes):
            node.send_signal(signal.SIGTERM)
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                node.kill()


if __name__ == "__main__":
    sys.exit(main())
