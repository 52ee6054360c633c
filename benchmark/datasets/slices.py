"""Seeded, deterministic train / validation / test slices of a dataset."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from foundation.splits import Split

#: Paper 000 splits the 60k training images into 50k for training and 10k for validation.
TRAIN_SIZE = 50_000


@dataclass(frozen=True)
class DataSlices:
    train: Split
    val: Split
    test: Split

    def describe(self) -> dict[str, int]:
        return {"n_train": len(self.train), "n_val": len(self.val), "n_test": len(self.test)}


def make_slices(
    full_train: Split, test: Split, n_train: int, n_val: int, n_test: int, seed: int, train_size: int = TRAIN_SIZE
) -> DataSlices:
    """Seeded slices: a split of the training set into its first ``train_size`` shuffled images (training)
    and the rest (validation), then the first n of each part (MNIST: 50k / 10k, as paper 000)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(full_train), generator=generator)
    train_index, val_index = order[:train_size][:n_train], order[train_size:][:n_val]
    test_index = torch.randperm(len(test), generator=generator)[:n_test]
    return DataSlices(
        Split(full_train.x[train_index], full_train.y[train_index]),
        Split(full_train.x[val_index], full_train.y[val_index]),
        Split(test.x[test_index], test.y[test_index]),
    )
