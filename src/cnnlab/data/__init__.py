"""Data: datasets as NCHW float32 arrays, mini-batch loading, normalization.

- ``load_dataset(name_or_path, root=None, download=True) -> Splits``: "digits" (bundled),
  "mnist", "fashion-mnist", "cifar10" (binary version), or an image folder;
- ``ArrayDataset``, ``Splits``: the arrays and their class names, validated;
- ``DataLoader``, ``Normalizer``, ``stratified_split``: batches, per-channel standardization,
  class-balanced splits;
- ``read_idx``, ``download_file``: the IDX reader and the verified, atomic downloader.

Only NumPy and the standard library are needed, except for image folders (Pillow).
"""

from cnnlab.data.datasets import DATASETS, ArrayDataset, Splits, load_dataset, load_digits
from cnnlab.data.download import download_file
from cnnlab.data.idx import read_idx
from cnnlab.data.loader import DataLoader, Normalizer, stratified_split

__all__ = [
    "DATASETS",
    "ArrayDataset",
    "DataLoader",
    "Normalizer",
    "Splits",
    "download_file",
    "load_dataset",
    "load_digits",
    "read_idx",
    "stratified_split",
]
