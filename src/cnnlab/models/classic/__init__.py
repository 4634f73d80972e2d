"""The classic ImageNet architectures with torchvision's layouts and state_dict keys.

One file per family; each builder takes ``in_channels``, ``input_size``, ``num_classes`` and
``rng`` first, like every zoo model, and returns a ``Graph`` whose keys equal torchvision's
(``model.load_state_dict({k: v.numpy() for k, v in tv_model.state_dict().items()})`` loads
its weights). Initial weights follow torchvision's per-architecture schemes (``init_schemes``).
"""

from collections.abc import Callable

from cnnlab.layers.graph import Graph
from cnnlab.models.classic.alexnet_vgg import alexnet, vgg11, vgg16
from cnnlab.models.classic.densenet import densenet121
from cnnlab.models.classic.googlenet import googlenet
from cnnlab.models.classic.mobilenet import mobilenet_v2
from cnnlab.models.classic.resnet import resnet18, resnet50
from cnnlab.models.classic.shufflenet import shufflenet_v2_x1_0
from cnnlab.models.classic.squeezenet import squeezenet1_1

#: The classic architectures by torchvision's names (the zoo's ``MODELS`` includes them).
CLASSIC: dict[str, Callable[..., Graph]] = {
    "alexnet": alexnet,
    "vgg11": vgg11,
    "vgg16": vgg16,
    "googlenet": googlenet,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "densenet121": densenet121,
    "squeezenet1_1": squeezenet1_1,
    "mobilenet_v2": mobilenet_v2,
    "shufflenet_v2_x1_0": shufflenet_v2_x1_0,
}

__all__ = ["CLASSIC", *CLASSIC]
