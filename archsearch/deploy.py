"""A trained model out of Python: ONNX with the input normalisation inside the graph, checked
with onnxruntime, and a static int8 (QDQ) copy (`pip install -e '.[deploy]'`).

The graph takes raw pixel values as float32 [N, C, H, W] in 0-255 (what a camera or a
uint8 buffer gives) and returns logits [N, classes]: nothing to know about mean and std.
int8: onnxruntime's static post-training quantization, QDQ format, per-channel weights,
activations calibrated on training images (never test images).
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ArchsearchError

CALIBRATION_IMAGES = 500  # training images the int8 activation ranges are calibrated on
CHECK_IMAGES = 1000       # test images onnxruntime is compared with PyTorch on


def require() -> None:
    """One line naming the extra when onnx, onnxruntime or onnxscript is missing."""
    missing = [m for m in ("onnx", "onnxruntime", "onnxscript") if not _importable(m)]
    if missing:
        raise ArchsearchError(f"ONNX export needs {', '.join(missing)}: pip install -e '.[deploy]'")


def _importable(name: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(name) is not None


class Normalized(nn.Module):
    """The trained net behind its input normalisation: raw 0-255 pixels in, logits out."""

    def __init__(self, net: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * 255)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def to_onnx(model: Normalized, in_shape: tuple, path: Path) -> Path:
    """Export with a dynamic batch dimension (torch's dynamo exporter; its progress lines are kept quiet)."""
    model.eval()
    example = torch.zeros(2, *in_shape)
    with contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(model, (example,), str(path), input_names=["image"], output_names=["logits"],
                          dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch")},), external_data=False)
    return path


def run(path: Path, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """Logits of an ONNX model on uint8 images [N, C, H, W], on onnxruntime's CPU provider."""
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"image": images[i:i + batch].astype(np.float32)})[0]
                           for i in range(0, len(images), batch)])


def max_difference(path: Path, model: Normalized, images: np.ndarray) -> float:
    """Largest absolute difference between onnxruntime's and PyTorch's logits on `images`."""
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(images.astype(np.float32))).numpy()
    return float(np.abs(run(path, images) - expected).max())


def accuracy(path: Path, images: np.ndarray, labels: np.ndarray) -> float:
    """Test accuracy (%) of an ONNX model."""
    return float(100.0 * (run(path, images).argmax(1) == labels).mean())


def quantize(path: Path, out: Path, calibration: np.ndarray) -> Path:
    """Static int8 copy of an ONNX model: QDQ, per-channel int8 weights, int8 activations whose
    ranges come from `calibration` (uint8 training images)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"image": calibration[i:i + 50].astype(np.float32)}
                                 for i in range(0, len(calibration), 50)])

        def get_next(self):
            return next(self.batches, None)

    prepared = out.with_suffix(".pre.onnx")
    try:
        quant_pre_process(str(path), str(prepared))
        quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QInt8)
    finally:
        prepared.unlink(missing_ok=True)
    return out
