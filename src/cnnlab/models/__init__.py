"""Ready-made models (the zoo), models built from YAML/JSON architecture files, and ``probe``
(run a model layer by layer: feature maps, penultimate features)."""

from cnnlab.models.builder import model_from_file, model_from_spec
from cnnlab.models.zoo import MODELS, build_model, lenet5, resnet, small, small_bn, vgg

__all__ = [
    "MODELS",
    "build_model",
    "lenet5",
    "model_from_file",
    "model_from_spec",
    "resnet",
    "small",
    "small_bn",
    "vgg",
]
