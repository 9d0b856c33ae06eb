import pytest
import torch

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


def test_least_overlap_reference_is_the_frame_that_overlaps_the_clip_least(tiny_data):
    root, index = tiny_data["root"], tiny_data["index"]
    data = EvalDataset(root, index, "wild", max_frames=2, min_gap=2, reference="least_overlap")
    ref, clip = data.frames(0)
    _, rows = data.videos[0]
    outside = [int(r) for r in rows if int(r) not in clip]
    masks = torch.cat([data.reader.mask(r) for r in clip]).bool()

    def iou(r):
        m = data.reader.mask(r).bool()
        return float(((masks & m).flatten(1).sum(1) / (masks | m).flatten(1).sum(1)).mean())

    assert ref in outside and clip == [int(r) for r in rows[2:4]]  # the clip does not move
    assert iou(ref) == min(iou(r) for r in outside)
    assert len({round(iou(r), 6) for r in outside}) > 1  # the choice is not a tie: the test can fail
    item = data[0]
    assert item["ref_name"] == index.at[ref, "images"].split("/")[-1]
    with pytest.raises(ValueError, match="reference must be one of"):
        EvalDataset(root, index, "wild", reference="closest")
