"""Torch tensors and NumPy arrays at the boundary: arrays are viewed as tensors without a copy
(``torch.from_numpy``) and results are handed back as arrays when the input was one."""

from __future__ import annotations

import numpy as np
import torch

_REAL = (torch.float32, torch.float64)
_COMPLEX = {torch.complex64: torch.float32, torch.complex128: torch.float64}


def as_tensor(x, what: str):
    """``(tensor, to_caller)``: ``x`` as a torch tensor sharing its memory, and the function that
    turns a result back into the caller's type (NumPy in, NumPy out)."""
    if isinstance(x, torch.Tensor):
        return x, _identity
    if isinstance(x, np.ndarray):
        if not x.flags.writeable:
            x = x.copy()  # torch cannot view read-only memory
        return torch.from_numpy(x), _to_numpy
    raise TypeError(f"{what}: expected a torch.Tensor or a numpy.ndarray, got {type(x).__name__}")


def _identity(t):
    return t


def _to_numpy(t):
    if t is None:
        return None
    return t.detach().cpu().numpy()


def real_dtype_of(t: torch.Tensor, what: str) -> torch.dtype:
    """The real precision of ``t``: float32 for float32/complex64, float64 for
    float64/complex128; anything else is refused with ``ValueError``."""
    if t.dtype in _REAL:
        return t.dtype
    if t.dtype in _COMPLEX:
        return _COMPLEX[t.dtype]
    raise ValueError(
        f"{what}: dtype {t.dtype} is not supported; use float32 or float64 "
        "(complex64 or complex128 for k-space)"
    )


def device_name(device) -> str:
    """``str(torch.device)`` with an explicit index for CUDA (``cuda`` is ``cuda:0``)."""
    d = torch.device(device)
    if d.type == "cuda":
        return f"cuda:{d.index if d.index is not None else torch.cuda.current_device()}"
    return d.type
