"""The flip-TTA warning reflects the run's real settings (issue 23 item 15).

`cnnlab train --recipe fashion --data digits` trains with `--augment shift,flip` and
`--tta flip`; TTA then lowered the accuracy and the warning asked "was the model trained
with --augment flip?" -- it was. The real reason: mirrored digits are not digits.
"""

from __future__ import annotations

from cnnlab.train.evaluation.evaluate import tta_warning

LOWER = {"accuracy": 0.6861, "accuracy_without_tta": 0.7139}
HIGHER = {"accuracy": 0.95, "accuracy_without_tta": 0.94}


def test_a_model_trained_with_flips_on_digits_is_told_that_digits_are_not_mirror_symmetric() -> None:
    warning = tta_warning("flip", "shift,flip", LOWER, "digits")
    assert warning is not None
    assert "was the model trained with --augment flip" not in warning
    assert warning.startswith(
        "flip TTA lowered the accuracy (accuracy 0.6861 with flip TTA, 0.7139 without) although the "
        "model was trained with flipped images (augment=shift,flip): the classes of digits are not "
        "mirror-symmetric (a mirrored digit is not a digit)"
    )
    assert warning.endswith("Use --tta none, and --augment shift (without flip)")


def test_a_folder_dataset_gets_the_general_reason_and_flip_alone_becomes_none() -> None:
    warning = tta_warning("flip", "flip", LOWER, "/data/letters")
    assert warning is not None
    assert "the classes of /data/letters are not mirror-symmetric (a mirrored image is not always" in warning
    assert warning.endswith("--augment none (without flip)")


def test_the_other_cases_are_unchanged() -> None:
    assert tta_warning("none", "shift,flip", LOWER, "digits") is None
    assert tta_warning("flip", "shift,flip", HIGHER, "digits") is None  # TTA helped: no word
    without = tta_warning("flip", "none", HIGHER, "digits")
    assert without is not None and "trained without flipped images (augment=none)" in without
    # a bare model file (augment unknown): the question is still the right one
    unknown = tta_warning("flip", None, LOWER)
    assert unknown is not None and "was the model trained with --augment flip?" in unknown
