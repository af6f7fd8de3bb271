"""PSNR and SSIM exactly as ``scoreinv reconstruct`` scores its cases (equal to
scikit-image's ``peak_signal_noise_ratio`` and ``structural_similarity`` with the default 7×7
window; SSIM of ``[C, H, W]`` is the mean over channels)."""

from __future__ import annotations

from . import _scoreinv
from ._tensors import as_tensor

__all__ = ["psnr", "ssim", "save_figure"]


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


def save_figure(path, truth, images: dict, error_gain: float = 4.0, window=None) -> None:
    """Writes the labelled comparison figure of ``scoreinv reconstruct`` to ``path`` (PNG,
    atomically): ``truth`` (or ``None``), then each of ``images`` (name → ``[H, W]`` or
    ``[C, H, W]`` in [0, 1], in order) captioned with its PSNR / SSIM against ``truth``, then the
    |error| × ``error_gain`` of the last one; ``window`` = ``(lo, hi, units)`` names the display
    window in the footer (e.g. ``(-1000, 1500, "HU")``)."""
    import os

    def chw(v, what):
        t, _ = as_tensor(v, what)
        t = t.detach()
        return t.unsqueeze(0) if t.dim() == 2 else t

    if not isinstance(images, dict) or not images:
        raise ValueError("save_figure: images must be a non-empty dict name -> image")
    tt = None if truth is None else chw(truth, "save_figure: truth")
    names = [str(k) for k in images]
    ims = [chw(v, f"save_figure: {k}") for k, v in images.items()]
    w = None if window is None else (float(window[0]), float(window[1]), str(window[2]))
    _scoreinv.save_figure(os.fspath(path), tt, names, ims, float(error_gain), w)
