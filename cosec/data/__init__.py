"""Data: decoding, guidance rendering, the frame index and the training/evaluation datasets."""
