"""Which frozen network turns an image into a feature vector, and how is the image prepared for it?

:func:`build_feature_extractor` builds any torchvision classification model by name, loads its
weights (torchvision's ImageNet weights by enum name, a local state-dict file, or a seeded random
init), and replaces the final ``nn.Linear`` (``fc``, ``classifier[-1]``, ``heads.head``, ...) by an
identity so the model returns its penultimate, pooled features. :class:`Preprocess` is the matching
image preparation, split into a uint8 part that runs in DataLoader workers and a float
normalisation that runs on the batch; its ``repr`` is part of the cache key.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn

from coreclean._internal.hashing import sha256_file_once
from coreclean.exceptions import WeightsError
from coreclean.embedding.images import load_rgb
from coreclean.embedding.reuse import looks_like_weights_file

__all__ = ["Preprocess", "FeatureExtractor", "build_feature_extractor", "default_preprocess", "list_backbones"]

logger = logging.getLogger(__name__)

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_RANDOM_INIT_SEED = 0


@dataclass(frozen=True)
class Preprocess:
    """ImageNet-style preparation: resize the short side, centre-crop, scale and normalise.

    With ``mirror=True`` the crop is flipped left to right (the second view of ``tta="flip"``).

    Equivalent to torchvision's ``weights.transforms()`` (``ImageClassification``) on a PIL image:
    the resize runs on 8-bit pixels in PIL, then the crop, then ``(x / 255 - mean) / std``.
    :meth:`load` does the 8-bit part (in DataLoader workers, so only uint8 crosses processes);
    :meth:`normalize` does the float part on a whole batch.
    """

    crop_size: int
    resize_size: int
    mean: tuple[float, float, float] = _IMAGENET_MEAN
    std: tuple[float, float, float] = _IMAGENET_STD
    interpolation: str = "bilinear"
    jpeg_draft: bool = True
    mirror: bool = False

    def __repr__(self) -> str:  # the cache key covers it: an unmirrored transform keeps its old text
        mirrored = ", mirror=True" if self.mirror else ""
        return (
            f"Preprocess(resize_size={self.resize_size}, crop_size={self.crop_size}, "
            f"interpolation={self.interpolation}, antialias=True, mean={list(self.mean)}, "
            f"std={list(self.std)}, jpeg_draft={self.jpeg_draft}{mirrored})"
        )

    def load(self, path: str | os.PathLike) -> torch.Tensor:
        """Decode, resize and crop one image file into a ``(3, crop_size, crop_size)`` uint8 tensor.

        Raises
        ------
        UnreadableImageError
            If the file cannot be decoded.
        """
        draft = self.resize_size if self.jpeg_draft else None
        image = load_rgb(path, draft_size=draft)
        width, height = image.size
        short = min(width, height)
        if short != self.resize_size:
            scale = self.resize_size / short
            size = (max(1, int(self.resize_size if width == short else width * scale)),
                    max(1, int(self.resize_size if height == short else height * scale)))
            image = image.resize(size, _PIL_INTERPOLATION[self.interpolation])
        image = _center_crop(image, self.crop_size)
        if self.mirror:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        array = np.asarray(image, dtype=np.uint8)
        return torch.from_numpy(array.copy()).permute(2, 0, 1)

    def normalize(self, batch: torch.Tensor, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Turn a ``(n, 3, h, w)`` uint8 batch into normalised floats of ``dtype``."""
        mean = torch.tensor(self.mean, device=batch.device).view(1, 3, 1, 1) * 255.0
        inv_std = 1.0 / (torch.tensor(self.std, device=batch.device).view(1, 3, 1, 1) * 255.0)
        return ((batch.float() - mean) * inv_std).to(dtype)


_PIL_INTERPOLATION = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}


def _center_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    if width < size or height < size:  # torchvision pads with zeros; so do we
        canvas = Image.new("RGB", (max(width, size), max(height, size)))
        canvas.paste(image, ((canvas.width - width) // 2, (canvas.height - height) // 2))
        image, (width, height) = canvas, canvas.size
    left = int(round((width - size) / 2.0))
    top = int(round((height - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


@dataclass
class FeatureExtractor:
    """A frozen model returning penultimate features, plus what identifies it in a cache key."""

    model: nn.Module
    backbone: str
    weights_id: str
    weights_source: str
    head: str


#: A model-free backbone: the resized image's pixels, flattened. For tiny images (the demo's digits)
#: and as a floor to compare learned features against.
PIXELS = "pixels"
_PIXELS_DEFAULT_SIZE = 16


def list_backbones() -> list[str]:
    """Return the valid ``backbone`` values: torchvision's classification models, and ``"pixels"``."""
    return sorted([*torchvision.models.list_models(module=torchvision.models), PIXELS])


def default_preprocess(backbone: str, *, image_size: int | None = None) -> Preprocess:
    """Return the preprocessing torchvision's default weights of ``backbone`` use, at ``image_size``.

    The resize/crop ratio, mean, std and interpolation come from
    ``get_model_weights(backbone).DEFAULT.transforms()`` (no download); ``image_size`` replaces the
    crop size and scales the resize size with it.
    """
    crop, resize, mean, std, interp = 224, 256, _IMAGENET_MEAN, _IMAGENET_STD, "bilinear"
    if backbone == PIXELS:
        crop = resize = _PIXELS_DEFAULT_SIZE
    try:
        preset = torchvision.models.get_model_weights(backbone).DEFAULT.transforms()
        crop, resize = int(preset.crop_size[0]), int(preset.resize_size[0])
        mean, std = tuple(preset.mean), tuple(preset.std)
        interp = preset.interpolation.value
    except (ValueError, KeyError, AttributeError, IndexError, TypeError):
        logger.debug("no torchvision preset for %s; using ImageNet defaults", backbone)
    size = image_size or crop
    return Preprocess(
        crop_size=size,
        resize_size=int(math.floor(size * resize / crop)),
        mean=mean,  # type: ignore[arg-type]
        std=std,  # type: ignore[arg-type]
        interpolation=interp if interp in _PIL_INTERPOLATION else "bilinear",
    )


def build_feature_extractor(backbone: str = "resnet18", *, weights: str | os.PathLike | None = "DEFAULT") -> FeatureExtractor:
    """Build ``backbone`` with ``weights`` loaded, classifier removed, frozen and in eval mode.

    Parameters
    ----------
    backbone : str
        A torchvision classification model name (``torchvision.models.list_models``), e.g.
        ``"resnet18"``, ``"mobilenet_v2"``, ``"convnext_tiny"``, ``"vit_b_16"``.
    weights : str, os.PathLike or None
        ``"DEFAULT"`` or a weights enum name (``"IMAGENET1K_V1"``, ``"ResNet18_Weights.IMAGENET1K_V1"``):
        torchvision's weights, downloaded once into torch's hub cache. A path to a local state-dict
        file (a full model, or a trunk without the classifier). ``None`` or ``"none"``: random init
        with a fixed seed (for tests).

    Returns
    -------
    FeatureExtractor
        ``weights_id`` is the enum name, ``"none"``, or ``"sha256:<hex>"`` of a weights file.

    Raises
    ------
    WeightsError
        On an unknown backbone, unknown weights name, failed download, a missing file, or a file
        whose keys or shapes do not fit the model.
    """
    names = list_backbones()
    if backbone not in names:
        close = difflib.get_close_matches(backbone, names, n=3)
        raise WeightsError(
            f"unknown backbone {backbone!r}; use a torchvision classification model name"
            + (f", e.g. {', '.join(close)}" if close else " such as resnet18 or mobilenet_v2") + "."
        )
    spec = "none" if weights is None else str(weights)
    if backbone == PIXELS:
        if spec.lower() not in ("none", "default"):
            raise WeightsError("the pixels backbone has no weights; pass --weights none (or leave the default).")
        model, head, weights_id, weights_source = nn.Flatten(), "none", "none", "raw pixels"
    elif spec.lower() == "none":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_RANDOM_INIT_SEED)
            model = torchvision.models.get_model(backbone, weights=None)
        head = _drop_head(model, backbone)
        weights_id, weights_source = "none", "random init (seed 0)"
    elif looks_like_weights_file(spec):
        model = torchvision.models.get_model(backbone, weights=None)
        head = _drop_head(model, backbone)
        weights_id, weights_source = _load_weights_file(model, Path(spec).expanduser(), backbone, head)
    else:
        enum = _resolve_enum(backbone, spec)
        try:
            model = torchvision.models.get_model(backbone, weights=enum)
        except (OSError, RuntimeError, ValueError) as err:
            raise WeightsError(
                f"could not download or load {enum} for {backbone} ({type(err).__name__}: {err}); "
                "check the network, or pass a local state-dict file with --weights PATH (or none)."
            ) from err
        head = _drop_head(model, backbone)
        weights_id, weights_source = str(enum), enum.url
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return FeatureExtractor(model, backbone, weights_id, weights_source, head)


def _resolve_enum(backbone: str, spec: str) -> torchvision.models.WeightsEnum:
    try:
        enum_class = torchvision.models.get_model_weights(backbone)
    except ValueError as err:
        raise WeightsError(f"torchvision has no pretrained weights for {backbone}; pass --weights PATH or none.") from err
    name = spec.split(".")[-1]
    try:
        return enum_class.verify(name)
    except (ValueError, KeyError, TypeError) as err:
        options = ["DEFAULT", *(w.name for w in enum_class)]
        raise WeightsError(
            f"unknown weights {spec!r} for {backbone}; use one of {options}, a state-dict file path, or none."
        ) from err


def _drop_head(model: nn.Module, backbone: str) -> str:
    """Replace the last ``nn.Linear`` by identity; return its dotted name."""
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise WeightsError(
            f"backbone {backbone} has no linear classifier head to remove; pick a model such as "
            "resnet18, mobilenet_v2, efficientnet_b0, convnext_tiny or vit_b_16."
        )
    head = linears[-1]
    parent_name, _, child = head.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, nn.Identity())
    return head


def _load_weights_file(model: nn.Module, path: Path, backbone: str, head: str) -> tuple[str, str]:
    if not path.is_file():
        raise WeightsError(
            f"weights file {path} not found; pass an existing state-dict file, DEFAULT for torchvision's "
            "ImageNet weights, or none."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types (pickle, zip, runtime) for a bad file
        raise WeightsError(
            f"cannot read weights file {path} as a torch state dict ({type(err).__name__}); "
            "save it with torch.save(model.state_dict(), path)."
        ) from err
    state = _unwrap_state_dict(state, path)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1].strip()
        raise WeightsError(
            f"weights file {path} does not fit {backbone}: {first}; is it a {backbone} state dict?"
        ) from err
    unexpected = [k for k in result.unexpected_keys if not k.startswith(head + ".")]
    if result.missing_keys or unexpected:
        detail = []
        if result.missing_keys:
            detail.append(f"{len(result.missing_keys)} missing key(s) such as {result.missing_keys[:3]}")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected key(s) such as {unexpected[:3]}")
        raise WeightsError(
            f"weights file {path} does not fit {backbone}: {'; '.join(detail)}. "
            f"Pass a {backbone} state dict (the classifier {head!r} may be absent), or a matching --backbone."
        )
    return f"sha256:{sha256_file_once(path)}", str(path.resolve())


def _unwrap_state_dict(state: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(state, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(
            f"weights file {path} is not a state dict of tensors; save it with torch.save(model.state_dict(), path)."
        )
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state
