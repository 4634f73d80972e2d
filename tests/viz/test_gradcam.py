"""Grad-CAM and saliency against a PyTorch implementation (float64), and what they leave alone."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import cnnlab
from cnnlab.errors import ShapeError
from cnnlab.functional.conv import ConvWorkspace, SavedConv
from cnnlab.interop.torch import to_torch
from cnnlab.models import build_model
from cnnlab.viz import grad_cam, saliency
from cnnlab.viz.resize import bilinear_resize


def randomize_batchnorm(model, rng):
    """Random BN weights and running statistics, so eval mode is not the identity."""
    state = model.state_dict()
    for key, value in state.items():
        if key.endswith(("running_mean", "bias")):
            state[key] = rng.normal(0, 0.3, value.shape)
        elif key.endswith(("running_var",)) or (key.endswith("weight") and value.ndim == 1):
            state[key] = rng.uniform(0.5, 1.5, value.shape)
    model.load_state_dict(state)


def resnet_model(rng):
    model = build_model("resnet", in_channels=2, input_size=(10, 10), num_classes=4, rng=1, depth=2, width=4)
    model.astype(np.float64)
    randomize_batchnorm(model, rng)
    return model, (2, 10, 10)


def small_bn_model(rng):
    model = build_model("small_bn", in_channels=1, input_size=(8, 8), num_classes=3, rng=2).astype(np.float64)
    randomize_batchnorm(model, rng)
    return model, (1, 8, 8)


def custom_model(rng):
    """Odd sizes, strides, 'same' padding, dropout, pooling that does not divide."""
    model = cnnlab.Sequential(
        cnnlab.Conv2D(3, 5, 3, stride=2, padding="same", rng=3),
        cnnlab.LeakyReLU(),
        cnnlab.Dropout(0.3, rng=0),
        cnnlab.Conv2D(5, 6, 3, padding=1, rng=4),
        cnnlab.Tanh(),
        cnnlab.MaxPool2D(2, ceil_mode=True),
        cnnlab.Flatten(),
        cnnlab.Dense(6 * 3 * 4, 5, rng=5),
    ).astype(np.float64)
    return model, (3, 11, 13)


MODELS = {"resnet": resnet_model, "small_bn": small_bn_model, "custom": custom_model}


def torch_grad_cam(torch, model, x, target, layer, resize):
    """Grad-CAM with autograd on the converted model: the reference."""
    F = torch.nn.functional
    module = to_torch(model).eval()
    h = torch.from_numpy(x)
    for i, sub in enumerate(module):
        h = sub(h)
        if i == layer:
            feats = h
            feats.retain_grad()
    logits = h
    if target is None:
        target = logits.argmax(1).numpy()
    logits[torch.arange(len(x)), torch.as_tensor(target)].sum().backward()
    alpha = feats.grad.mean(dim=(2, 3))  # (N, K)
    cam = torch.relu((alpha[:, :, None, None] * feats).sum(1)).detach()  # (N, h, w)
    peak = cam.amax(dim=(1, 2), keepdim=True)
    cam = torch.where(peak > 0, cam / torch.where(peak > 0, peak, 1), 0)
    if resize:
        cam = F.interpolate(cam[:, None], size=x.shape[2:], mode="bilinear", align_corners=False)[:, 0]
    return cam.numpy()


def torch_saliency(torch, model, x, target):
    module = to_torch(model).eval()
    xt = torch.from_numpy(x).requires_grad_(True)
    logits = module(xt)
    if target is None:
        target = logits.argmax(1).numpy()
    logits[torch.arange(len(x)), torch.as_tensor(target)].sum().backward()
    return xt.grad.abs().amax(dim=1).numpy()


def four_d_layers(model, shape):
    out, found = (1, *shape), []
    for i, layer in enumerate(model.layers):
        out = layer.output_shape(out)
        if len(out) == 4:
            found.append(i)
    return found


@pytest.mark.parametrize("name", sorted(MODELS))
def test_grad_cam_matches_torch_on_every_layer(torch, name, rng):
    model, shape = MODELS[name](rng)
    x = rng.normal(size=(3, *shape))
    classes = model.output_shape((1, *shape))[1]
    for layer in four_d_layers(model, shape):
        for target in (None, [0, classes - 1, 1]):
            for resize in (True, False):
                ours = grad_cam(model, x, target=target, layer=layer, resize=resize)
                ref = torch_grad_cam(torch, model, x, target, layer, resize)
                assert ours.shape == ref.shape
                np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10, err_msg=f"layer {layer}")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_saliency_matches_torch(torch, name, rng):
    model, shape = MODELS[name](rng)
    x = rng.normal(size=(4, *shape))
    for target in (None, 1):
        ours = saliency(model, x, target=target)
        assert ours.shape == (4, *shape[1:])
        np.testing.assert_allclose(ours, torch_saliency(torch, model, x, target), rtol=1e-10, atol=1e-12)


def test_default_layer_is_the_last_wide_feature_map(rng):
    model, shape = resnet_model(rng)
    x = rng.normal(size=(2, *shape))
    last = four_d_layers(model, shape)[-1]
    np.testing.assert_array_equal(grad_cam(model, x), grad_cam(model, x, layer=last))
    # A layer whose map is 1 x 1 is skipped by the default (no "where" in one pixel).
    pooled = cnnlab.Sequential(
        cnnlab.Conv2D(1, 2, 3, rng=0), cnnlab.MaxPool2D(4), cnnlab.Flatten(), cnnlab.Dense(2, 3, rng=0)
    )
    x1 = rng.normal(size=(2, 1, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(
        grad_cam(pooled, x1, resize=False), grad_cam(pooled, x1, layer=0, resize=False)
    )


def test_maps_are_scaled_to_one_and_zero_stays_zero(rng):
    model, shape = small_bn_model(rng)
    x = rng.normal(size=(5, *shape))
    cam = grad_cam(model, x, resize=False)
    peaks = cam.max(axis=(1, 2))
    assert np.all((np.isclose(peaks, 1.0, rtol=0, atol=1e-12)) | (peaks == 0))
    # A target class whose logit no feature drives: weights of the last layer zeroed for class 0.
    model.layers[-1].params["weight"][0] = 0
    assert np.all(grad_cam(model, x, target=0) == 0)
    assert np.all(saliency(model, x, target=0) == 0)


def test_predicted_class_is_the_default_target(rng):
    model, shape = custom_model(rng)
    x = rng.normal(size=(4, *shape))
    predicted = model.predict(x).argmax(axis=1)
    np.testing.assert_array_equal(grad_cam(model, x), grad_cam(model, x, target=predicted))
    np.testing.assert_array_equal(saliency(model, x), saliency(model, x, target=predicted))


def snapshot(model):
    """Everything grad_cam must leave alone: modes, weights, buffers, grads, caches."""
    out = {}
    for prefix, layer in model.named_layers():
        out[prefix + "training"] = layer.training
        out[prefix + "needs_input_grad"] = getattr(layer, "needs_input_grad", None)
        for key, value in {**layer.params, **layer.buffers}.items():
            out[prefix + key] = value.copy()
        out[prefix + "grads"] = {k: v.copy() for k, v in layer.grads.items()}
        out[prefix + "cache"] = copy.deepcopy(layer._cache)
    return out


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        va, vb = a[key], b[key]
        if isinstance(va, dict):
            assert_same(va, vb)
        elif isinstance(va, np.ndarray):
            np.testing.assert_array_equal(va, vb, err_msg=key)
        elif isinstance(va, SavedConv):  # a conv's forward -> backward state
            assert_same(
                {f"{key}.{k}": v for k, v in vars(va).items()}, {f"{key}.{k}": v for k, v in vars(vb).items()}
            )
        elif isinstance(va, ConvWorkspace):  # scratch buffers: whoever was handed them since
            assert va.version("cols") == vb.version("cols"), key
        elif isinstance(va, tuple):
            assert len(va) == len(vb), key
            for ea, eb in zip(va, vb, strict=True):
                assert_same({key: ea}, {key: eb}) if not isinstance(
                    ea, np.ndarray
                ) else np.testing.assert_array_equal(ea, eb)
        else:
            assert va == vb, key


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_mode_weights_caches_and_grads_are_untouched(name, rng):
    """Mid-step (after forward and backward of a training batch, in train mode) grad_cam
    and saliency change nothing: a second backward of the same step gives the same grads."""
    model, shape = MODELS[name](rng)
    model.layers[0].needs_input_grad = False  # as fit() sets it on a first conv
    twin = copy.deepcopy(model)
    xb = rng.normal(size=(4, *shape))
    dy = rng.normal(size=model.output_shape(xb.shape))
    for net in (model, twin):
        net.train()
        net.forward(xb)
        net.backward(dy)
    before = snapshot(model)
    grad_cam(model, rng.normal(size=(2, *shape)))
    saliency(model, rng.normal(size=(3, *shape)))
    assert_same(before, snapshot(model))
    # The caches (and the conv workspaces' reused columns) still belong to xb.
    model.backward(dy)
    twin.backward(dy)
    assert_same(snapshot(twin), snapshot(model))


def test_train_mode_model_gives_the_eval_mode_maps(rng):
    model, shape = custom_model(rng)  # has Dropout
    x = rng.normal(size=(3, *shape))
    in_train = grad_cam(model.train(), x)
    assert model.training
    np.testing.assert_array_equal(in_train, grad_cam(model.eval(), x))


def test_float32_model(torch, rng):
    model = build_model("small", input_size=(8, 8), num_classes=3, rng=0)
    x = rng.normal(size=(2, 1, 8, 8))
    cam = grad_cam(model, x)
    assert cam.dtype == np.float32
    ref = torch_grad_cam(torch, model.astype(np.float64), x, None, four_d_layers(model, (1, 8, 8))[-1], True)
    np.testing.assert_allclose(cam, ref, atol=1e-4)


@pytest.mark.parametrize(
    "size_in,size_out",
    [((3, 4), (8, 8)), ((5, 5), (5, 5)), ((7, 6), (3, 2)), ((1, 1), (4, 3)), ((2, 3), (28, 28))],
)
def test_bilinear_resize_matches_torch_interpolate(torch, size_in, size_out, rng):
    maps = rng.normal(size=(2, *size_in))
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(maps)[:, None], size=size_out, mode="bilinear", align_corners=False
    )[:, 0].numpy()
    np.testing.assert_allclose(bilinear_resize(maps, size_out), ref, rtol=1e-12, atol=1e-14)


def test_bad_arguments_have_clear_errors(rng):
    model, shape = custom_model(rng)
    x = rng.normal(size=(2, *shape))
    with pytest.raises(
        ValueError,
        match=r"grad_cam: argument `layer` must be an index into model.layers, from -8 to 7. "
        r"Received: layer=8",
    ):
        grad_cam(model, x, layer=8)
    with pytest.raises(ValueError, match="Received: layer='conv'"):
        grad_cam(model, x, layer="conv")
    with pytest.raises(
        ShapeError,
        match=r"layer 6 \(Flatten\) must output a 4-D feature map \(N, C, h, w\). "
        r"Received: shape \(2, 72\). Layers with 4-D outputs: 0, 1, 2, 3, 4, 5",
    ):
        grad_cam(model, x, layer=6)
    with pytest.raises(ShapeError, match="layer 7 \\(Dense\\)"):
        grad_cam(model, x, layer=-1)
    for bad in (5, -1, [0, 1, 2], [0.5, 1.0], "cat"):
        with pytest.raises(
            ValueError, match=r"argument `target` must be None, a class index in \[0, 5\) or 2 of them"
        ):
            grad_cam(model, x, target=bad)
        with pytest.raises(ValueError, match="saliency: argument `target`"):
            saliency(model, x, target=bad)
    with pytest.raises(
        ShapeError, match=r"x must be a numpy array of shape \(N, C, H, W\). Received: shape \(3, 11, 13\)"
    ):
        grad_cam(model, x[0])
    with pytest.raises(ValueError, match="argument `model` must be a cnnlab Sequential"):
        saliency(cnnlab.Conv2D(1, 1, 1), x)
