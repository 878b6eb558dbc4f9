"""Datasets of the paper as integer token sequences (see docs/data.md).

    ds = load_dataset("mnist", "train")        # fetched, verified and cached on first use
    x, y = ds[0]                               # uint8 tensor (784,), int
    x, lengths, y = collate_sequences([ds[0], ds[1]])
    static_info("cifar10", {"grayscale": True})  # the shape, without reading a file
    ds = load_dataset("arrays", "train", path="my_arrays/")  # any .npy folder / .npz (docs/data.md)
    ds.data_state()                            # the fitted quantiser, saved with a run
"""
from .datasets import (
    DATASETS,
    DOG_SIDES,
    CIFAR10,
    MNIST,
    PMNIST,
    Adding,
    CopyMemory,
    CSVFolder,
    DatasetInfo,
    DBpedia,
    IDXFolder,
    MissingArrayFile,
    NumpyArrays,
    SequenceDataset,
    StanfordDogs,
    check_options,
    data_root,
    dataset_options,
    load_dataset,
    static_info,
)
from .integrity import DownloadError, RemoteFile
from .quantize import Quantiser
from .sequences import collate_sequences, make_permutation, pixels_to_tokens

__all__ = [
    "DATASETS", "DOG_SIDES", "CIFAR10", "MNIST", "PMNIST", "Adding", "CopyMemory", "CSVFolder", "DatasetInfo",
    "DBpedia", "DownloadError", "IDXFolder", "MissingArrayFile", "NumpyArrays", "Quantiser", "RemoteFile", "SequenceDataset", "StanfordDogs", "check_options", "collate_sequences", "data_root",
    "dataset_options", "load_dataset", "make_permutation", "pixels_to_tokens", "static_info",
]
