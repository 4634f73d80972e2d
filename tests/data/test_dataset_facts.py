"""Facts about the datasets stated once in cnnlab.data.datasets and read everywhere (issue 24)."""

from __future__ import annotations

from cnnlab.data import cifar, datasets
from cnnlab.train.analysis import advice, tune
from cnnlab.train.evaluation.evaluate import tta_warning


def test_cifar10_class_names_are_one_list() -> None:
    assert datasets.DATASETS["cifar10"] is cifar.CLASSES


def test_mirror_safe_datasets_are_one_table() -> None:
    assert set(datasets.MIRROR_SAFE) <= set(datasets.DATASETS)
    assert advice.MIRROR_SAFE is datasets.MIRROR_SAFE
    assert set(tune.AUGMENT_ON) == set(datasets.MIRROR_SAFE)
    assert all("flip" in tune.AUGMENT_ON[name].split(",") for name in datasets.MIRROR_SAFE)


def test_tta_warning_names_digits_only_for_datasets_that_are_not_mirror_safe() -> None:
    metrics = {"accuracy": 0.5, "accuracy_without_tta": 0.6}
    for name in datasets.DATASETS:
        warning = tta_warning("flip", "shift,flip", metrics, name)
        assert warning is not None
        assert ("a mirrored digit is not a digit" in warning) == (name not in datasets.MIRROR_SAFE), name
