"""PSNR and SSIM exactly as ``scoreinv reconstruct`` scores its cases (equal to
scikit-image's ``peak_signal_noise_ratio`` and ``structural_similarity`` with the default 7×7
window; SSIM of ``[C, H, W]`` is the mean over channels)."""

from __future__ import annotations

from . import _scoreinv
from ._tensors import as_tensor

__all__ = ["psnr", "ssim"]


def psnr(truth, test, data_range: float = 1.0) -> float:
    """PSNR in dB of ``test`` against ``truth`` (``[H, W]`` or ``[C, H, W]``)."""
    a, _ = as_tensor(truth, "psnr: truth")
    b, _ = as_tensor(test, "psnr: test")
    return _scoreinv.psnr(a.detach(), b.detach(), float(data_range))


def ssim(truth, test, data_range: float = 1.0) -> float:
    """SSIM of ``test`` against ``truth`` (``[H, W]`` or ``[C, H, W]``)."""
    a, _ = as_tensor(truth, "ssim: truth")
    b, _ = as_tensor(test, "ssim: test")
    return _scoreinv.ssim(a.detach(), b.detach(), float(data_range))
