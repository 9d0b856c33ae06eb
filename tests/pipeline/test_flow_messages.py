"""What a Prefect flow run says when a stage fails: the stage's own error line, not a traceback."""

from __future__ import annotations

from flows.distill import failure_message


def test_failed_stage_state_message_is_the_stage_error_line():
    lines = [
        "Running stage 'phase1':",
        "> python stages/phase1.py --params params.yaml",
        "phase1: error: data/index.parquet: not a readable index (...); rerun the index stage",
        "ERROR: failed to reproduce 'phase1': failed to run: python stages/phase1.py, exited with 1",
    ]
    message = failure_message("phase1", 1, lines)
    assert message == (
        "DVC stage 'phase1' failed (exit code 1): "
        "phase1: error: data/index.parquet: not a readable index (...); rerun the index stage"
    )


def test_without_a_stage_line_dvc_s_own_error_is_given():
    lines = ["Running stage 'index':", "ERROR: 'data/prepared' does not exist"]
    assert failure_message("index", 255, lines).endswith("ERROR: 'data/prepared' does not exist")
    assert "see the log above" in failure_message("index", 1, ["some output"])
