"""Trained score models: ``load_model(dir)`` → :class:`Model` with ``score(x, t)``, its
:class:`SDE` and its ``config`` (the directory's ``config.json``)."""

from __future__ import annotations

import json
import os
from typing import Sequence

import torch

from . import _scoreinv
from ._tensors import as_tensor, device_name

__all__ = ["Model", "SDE", "load_model"]


class SDE:
    """The forward SDE of a model: ``x(t) | x(0) ~ N(m(t) x(0), s(t)² I)`` for ``t ∈ [0, 1]``
    (VE, VP or sub-VP, Song et al. 2021)."""

    def __init__(self, inner: "_scoreinv.Model"):
        self._m = inner
        #: ``ve``, ``vp`` or ``sub-vp``
        self.kind: str = inner.sde_kind
        #: the SDE's settings (``sigma_min``, ``sigma_max`` or ``beta_min``, ``beta_max``; ``n``)
        self.config: dict = json.loads(inner.sde_json)
        #: discretisation steps ``N``
        self.n_steps: int = inner.n_steps
        #: the smallest time used when sampling
        self.sampling_eps: float = inner.sampling_eps

    def mean_coeff_std(self, t: float) -> tuple[float, float]:
        """``(m(t), s(t))``."""
        return self._m.mean_coeff_std(float(t))

    def noise_level(self, t: float) -> float:
        """``σ(t) = s(t) / m(t)``: the noise level of ``x(t) / m(t)`` around ``x(0)``."""
        m, s = self.mean_coeff_std(t)
        return s / m

    def time_of_noise_level(self, sigma: float) -> float:
        """The ``t ∈ [eps, 1]`` with ``σ(t) = sigma`` (``σ`` increases with ``t``), clamped to
        the SDE's range; found by bisection to double precision."""
        lo, hi = self.sampling_eps, 1.0
        if sigma <= self.noise_level(lo):
            return lo
        if sigma >= self.noise_level(hi):
            return hi
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            if self.noise_level(mid) < sigma:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    def __repr__(self) -> str:
        return f"SDE({self.config})"


class Model:
    """A score model ``s(x, t) ≈ ∇ₓ log pₜ(x)`` loaded from a model directory."""

    def __init__(self, inner: "_scoreinv.Model"):
        self._m = inner
        #: ``config.json`` as a dict
        self.config: dict = json.loads(inner.config_json)
        self.sde = SDE(inner)
        #: the model directory
        self.path: str = inner.path
        #: per-sample shape ``[C, H, W]`` the model scores (a patch model scores any ``H, W``)
        self.sample_shape = None if inner.sample_shape is None else tuple(inner.sample_shape)
        self.any_size: bool = inner.any_size
        self.device = torch.device(inner.device)

    def score(self, x, t):
        """``s(x, t)`` for ``x`` ``[B, C, H, W]`` (float32, in model space: see
        :meth:`to_model_space`) and ``t`` a float or ``[B]`` times in ``(0, 1]``. Records
        autograd when ``x`` requires grad."""
        x, back = as_tensor(x, "score: x")
        if not isinstance(t, torch.Tensor):
            t = torch.full((x.shape[0],), float(t), dtype=torch.float32, device=x.device)
        return back(self._m.score(x, t))

    def sample(
        self,
        n: int,
        sampler: str = "pc",
        steps: int | None = None,
        seed: int = 0,
        batch: int | None = None,
        progress=False,
        classifier: str | os.PathLike | None = None,
        classes: Sequence[int] = (),
        guidance_scale: float = 1.0,
        **options,
    ):
        """``n`` samples ``[n] + sample_shape`` (float32, on the model's device) in the raw units
        of the training data, drawn as ``scoreinv sample --sampler SAMPLER --steps STEPS --seed
        SEED`` draws them (``samples.npy``): ``sampler`` ``pc`` (default), ``ode``, ``ald`` or
        ``ancestral``; ``options``: ``predictor``, ``corrector``, ``snr``,
        ``n_corrector_steps``, ``temperature``, ``step_lr``, ``ode_solver``, ``rtol``, ``atol``,
        ``no_denoise``. With ``classifier`` (a time-dependent classifier directory trained for
        this model's SDE and data), class-conditional samples by classifier guidance,
        ``s + w ∇ log p_t(c | x)`` with ``w = guidance_scale``, the ``classes`` (default: all)
        cycled over the samples, as ``--classifier DIR --class ... --guidance-scale W``. Seeds
        torch's global generator as the command line does."""
        from .tasks import _positive_int, _progress

        n = _positive_int("n", n)
        default_batch = n if classifier is not None else min(n, 64)
        batch = _positive_int("batch", batch) or default_batch
        opts = {"sampler": sampler, "steps": _positive_int("steps", steps), **options}
        if seed < 0:
            raise ValueError(f"seed {seed}: must be non-negative")
        clf = None if classifier is None else os.fspath(classifier)
        bar, callback = _progress(progress)
        try:
            x, nfe = self._m.sample(
                n,
                json.dumps(opts),
                batch,
                int(seed),
                callback,
                clf,
                [int(c) for c in classes],
                float(guidance_scale),
            )
        finally:
            if bar is not None:
                bar.close()
        return x

    def to_model_space(self, x):
        """Images in ``[0, 1]`` → the model's units (``2x − 1`` for a centred model)."""
        return 2 * x - 1 if self.config["data"].get("centered", False) else x

    def from_model_space(self, x):
        """The inverse of :meth:`to_model_space`."""
        return (x + 1) / 2 if self.config["data"].get("centered", False) else x

    def denoise(self, x, sigma):
        """Tweedie's formula: the posterior mean ``E[x₀ | x₀ + σ n = x]`` for images ``x`` in
        ``[0, 1]`` units with Gaussian noise of standard deviation ``sigma`` (a float or one per
        sample): ``D(x, σ) = x + σ² ∇ log p_σ(x)``, the score evaluated at the time ``t`` of
        the SDE with ``s(t)/m(t) = σ`` (in model units) on ``m(t) x``."""
        x, back = as_tensor(x, "denoise: x")
        dtype = x.dtype
        b = x.shape[0]
        scale = 2.0 if self.config["data"].get("centered", False) else 1.0
        sig = torch.as_tensor(sigma, dtype=torch.float64).flatten().cpu()
        if sig.numel() == 1:
            sig = sig.expand(b)
        if sig.numel() != b:
            raise ValueError(f"denoise: {sig.numel()} noise levels for a batch of {b}")
        if not bool(torch.isfinite(sig).all()) or bool((sig < 0).any()):
            raise ValueError(f"denoise: sigma must be finite and non-negative, got {sig.tolist()}")
        ts, ms, ss = [], [], []
        for s in sig.tolist():
            t = self.sde.time_of_noise_level(scale * s)
            m, sd = self.sde.mean_coeff_std(t)
            ts.append(t)
            ms.append(m)
            ss.append(sd)
        shape = (b,) + (1,) * (x.dim() - 1)
        m = torch.tensor(ms, dtype=torch.float32, device=x.device).view(shape)
        s = torch.tensor(ss, dtype=torch.float32, device=x.device).view(shape)
        t = torch.tensor(ts, dtype=torch.float32, device=x.device)
        xm = self.to_model_space(x.to(torch.float32)) * m
        d = (xm + s * s * self._m.score(xm.contiguous(), t)) / m
        return back(self.from_model_space(d).to(dtype))

    def __repr__(self) -> str:
        return (
            f"Model({self.path!r}, sde={self.sde.kind}, shape={self.sample_shape}, "
            f"device={self.device})"
        )


def load_model(path: str | os.PathLike, device="cpu") -> Model:
    """Loads a model directory (``config.json`` + ``model.safetensors``) onto ``device``.
    ``FileNotFoundError`` when the directory or one of its files is missing, ``ValueError``
    when they are not a scoreinv model."""
    return Model(_scoreinv.load_model(os.fspath(path), device_name(device)))


