"""deepinv interop (deepinv 0.5): scoreinv operators as ``deepinv.physics.LinearPhysics`` and
scoreinv score models as deepinv denoisers, so that deepinv's solvers (DPS, DiffPIR, …) run on
them.

* :func:`physics` — ``A``, ``A_adjoint`` and ``A_dagger`` (the operator's pseudo-inverse: FBP,
  zero-filled, Wiener) of a :class:`scoreinv.ops.Operator`. Complex measurements of real images
  (MRI) are shown to deepinv as real tensors ``[..., 2]`` (``torch.view_as_real``), so that the
  adjoint is the adjoint for the real inner product deepinv uses, ``Re(Aᴴ y)``.
* :func:`operator` — the reverse: a deepinv ``LinearPhysics`` as a scoreinv operator, so that
  :func:`scoreinv.reconstruct` runs the library's samplers (``dps``, ``ddim``, ``diffpir``) and
  baselines on it.
* :func:`denoiser` — Tweedie's formula on a score model,
  ``D(x, σ) = x + σ² ∇ log p_σ(x)`` (see :meth:`scoreinv.Model.denoise`), for images in
  ``[0, 1]`` as deepinv's denoisers take them.
"""

from __future__ import annotations

import torch

try:
    import deepinv as _dinv
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "scoreinv.deepinv needs deepinv 0.5 (pip install 'scoreinv[deepinv]' or deepinv==0.5.0)"
    ) from e

from .models import Model
from .ops import Operator, from_callables

__all__ = ["physics", "denoiser", "operator", "ScoreinvPhysics", "TweedieDenoiser"]


class ScoreinvPhysics(_dinv.physics.LinearPhysics):
    """A scoreinv operator as a deepinv linear physics ``y = N(A x)``."""

    def __init__(self, op: Operator, noise_model=None, **kwargs):
        if noise_model is None:
            noise_model = _dinv.physics.ZeroNoise()
        super().__init__(img_size=tuple(op.input_shape), noise_model=noise_model, **kwargs)
        self.op = op
        self._real_view = None  # decided on the first call: complex output of a real input

    def A(self, x, **kwargs):
        y = self.op.forward(x)
        if y.is_complex() and not x.is_complex():
            self._real_view = True
            return torch.view_as_real(y)
        return y

    def _from_deepinv(self, y):
        if not y.is_complex() and y.dim() == len(self.op.output_shape) + 2 and y.shape[-1] == 2:
            return torch.view_as_complex(y.contiguous())
        return y

    def A_adjoint(self, y, **kwargs):
        return self.op.adjoint(self._from_deepinv(y))

    def A_dagger(self, y, **kwargs):
        return self.op.pseudo_inverse(self._from_deepinv(y))


def physics(op: Operator, noise_model=None, **kwargs) -> ScoreinvPhysics:
    """``op`` as a ``deepinv.physics.LinearPhysics`` (``noise_model``: a deepinv noise model,
    default none)."""
    if not isinstance(op, Operator):
        raise TypeError(f"physics: expected a scoreinv.ops.Operator, got {type(op).__name__}")
    return ScoreinvPhysics(op, noise_model=noise_model, **kwargs)


class TweedieDenoiser(_dinv.models.Denoiser):
    """A scoreinv score model as a deepinv denoiser by Tweedie's formula."""

    def __init__(self, model: Model):
        super().__init__(device=model.device)
        self.model = model

    def forward(self, x, sigma, **kwargs):
        if isinstance(sigma, torch.Tensor):
            sigma = sigma.detach().to(torch.float64).flatten()
            if sigma.numel() == 1:
                sigma = float(sigma)
        return self.model.denoise(x, sigma)


def denoiser(model: Model) -> TweedieDenoiser:
    """``model`` as a deepinv denoiser ``D(x, σ)`` on images in ``[0, 1]``."""
    if not isinstance(model, Model):
        raise TypeError(f"denoiser: expected a scoreinv.Model, got {type(model).__name__}")
    return TweedieDenoiser(model)


def operator(physics, img_size=None, name: str = "deepinv") -> Operator:
    """A deepinv ``LinearPhysics`` as a scoreinv operator on images ``img_size`` (default
    ``physics.img_size``): ``A``, ``A_adjoint`` and ``A_dagger`` of the physics, without its
    noise model. The measurement shape is that of ``physics.A`` on a zero image."""
    if not isinstance(physics, _dinv.physics.LinearPhysics):
        raise TypeError(
            f"operator: expected a deepinv.physics.LinearPhysics, got {type(physics).__name__}"
        )
    size = img_size if img_size is not None else getattr(physics, "img_size", None)
    if size is None:
        raise ValueError("operator: give img_size (C, H, W); the physics does not record it")
    size = tuple(int(s) for s in size)
    with torch.no_grad():
        out = physics.A(torch.zeros((1,) + size))
    return from_callables(
        lambda x: physics.A(x),
        lambda y: physics.A_adjoint(y),
        size,
        tuple(out.shape[1:]),
        pseudo_inverse=lambda y: physics.A_dagger(y),
        name=name,
    )
