import torch
from torch.utils.data import TensorDataset

from cosec.train.batches import batch_stream


def test_stream_resumes_with_the_same_batches():
    ds = TensorDataset(torch.arange(100))
    stream = batch_stream(ds, batch_size=4, seed=3)
    full = [b[0].tolist() for _, b in zip(range(6), stream(0), strict=False)]
    resumed = [b[0].tolist() for _, b in zip(range(3), stream(3), strict=False)]
    assert resumed == full[3:]
    other_seed = [b[0].tolist() for _, b in zip(range(6), batch_stream(ds, 4, seed=4)(0), strict=False)]
    assert other_seed != full
