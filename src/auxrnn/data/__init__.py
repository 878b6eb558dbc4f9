"""Datasets of the paper as integer token sequences (see docs/data.md).

    ds = load_dataset("mnist", "train")        # fetched, verified and cached on first use
    x, y = ds[0]                               # uint8 tensor (784,), int
    x, lengths, y = collate_sequences([ds[0], ds[1]])
"""
from .datasets import (
    DATASETS,
    DOG_SIDES,
    CIFAR10,
    MNIST,
    PMNIST,
    RemoteFile,
    Adding,
    CopyMemory,
    CSVFolder,
    DatasetInfo,
    DBpedia,
    IDXFolder,
    SequenceDataset,
    StanfordDogs,
    data_root,
    dataset_options,
    load_dataset,
)
from .integrity import DownloadError
from .sequences import collate_sequences, make_permutation, pixels_to_tokens

__all__ = [
    "DATASETS", "DOG_SIDES", "CIFAR10", "MNIST", "PMNIST", "Adding", "CopyMemory", "CSVFolder", "DatasetInfo",
    "DBpedia", "DownloadError", "IDXFolder", "RemoteFile", "SequenceDataset", "StanfordDogs", "collate_sequences", "data_root",
    "dataset_options", "load_dataset", "make_permutation", "pixels_to_tokens",
]
