import pytest

from cosec.data.datasets import EvalDataset


def test_eval_min_gap_keeps_only_frames_far_from_the_reference(tiny_data):
    root, index = tiny_data["root"], tiny_data["index"]
    split = sorted(set(index["split"]) - {"train"})[0]
    near = EvalDataset(root, index, split)[0]
    far = EvalDataset(root, index, split, min_gap=3)[0]
    n = near["pixel_values"].shape[1]
    assert far["pixel_values"].shape[1] == n - 2  # frames 1 and 2 dropped (reference is frame 0)
    assert far["frame_names"] == near["frame_names"][2:]
    with pytest.raises(ValueError, match="no frame is 99 or more frames from the reference"):
        EvalDataset(root, index, split, min_gap=99)[0]
