"""Forward operators ``y = A x`` of scoreinv on torch tensors (any device) and NumPy arrays.

Every operator has ``forward`` (``A x``), ``adjoint`` (``Aᴴ y``, the exact adjoint of the
discretised ``A``) and ``pseudo_inverse`` (``A⁺ y``: FBP for CT, zero-filled for MRI, Wiener for
blur; ``fbp`` is its name for the CT operators). Inputs are batches ``[B] + input_shape`` or
single samples ``input_shape``; tensors cross into the Rust library without a copy.

``forward`` and ``adjoint`` are differentiable: the gradient of ``A x`` is ``Aᴴ g`` and that of
``Aᴴ y`` is ``A g`` (``torch.autograd.Function``), whatever backend computes them.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Sequence

import torch

from . import _scoreinv
from ._tensors import as_tensor, device_name, real_dtype_of

__all__ = [
    "Operator",
    "Radon",
    "FanBeam",
    "MriFourier",
    "SenseMri",
    "Inpainting",
    "Grayscale",
    "Blur",
    "mri_mask",
    "from_callables",
]


class _Linear(torch.autograd.Function):
    """``A x`` (or ``Aᴴ y``) with the adjoint map as its backward."""

    @staticmethod
    def forward(ctx, x, op, direction):
        ctx.op = op
        ctx.direction = direction
        ctx.real_input = not x.is_complex()
        return op._raw(direction, x.detach())

    @staticmethod
    def backward(ctx, g):
        other = "adjoint" if ctx.direction == "forward" else "forward"
        gx = ctx.op._raw(other, g.contiguous())
        if ctx.real_input and gx.is_complex():
            gx = gx.real
        return gx, None, None


def _hw(shape) -> tuple[int, int]:
    if isinstance(shape, int):
        return shape, shape
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2:
        raise ValueError(f"shape {shape}: expected (H, W) or an int N for N×N")
    return shape


class Operator:
    """A linear operator of the Rust library, built on demand for each device and precision of
    the tensors it is applied to."""

    #: whether the Rust operator is built for one dtype and device (CT) or follows its input
    _per_dtype_device = False

    def __init__(self, build: Callable[[str, str], "_scoreinv.Operator"]):
        self._build = build
        self._cache: dict = {}
        first = self._rust(torch.float32, torch.device("cpu"))
        self.input_shape = tuple(first.input_shape)
        self.output_shape = tuple(first.output_shape)
        self.name = first.name

    @classmethod
    def _wrap(cls, rust_op: "_scoreinv.Operator") -> "Operator":
        """An operator around one already built Rust operator (e.g. a task's)."""
        op = cls.__new__(cls)
        Operator.__init__(op, lambda dtype, device: rust_op)
        return op

    def _rust(self, dtype: torch.dtype, device: torch.device):
        key = (dtype, device_name(device)) if self._per_dtype_device else None
        op = self._cache.get(key)
        if op is None:
            op = self._build(str(dtype).removeprefix("torch."), device_name(device))
            self._cache[key] = op
        return op

    def _raw(self, direction: str, t: torch.Tensor) -> torch.Tensor:
        rust = self._rust(real_dtype_of(t, f"{self.name}.{direction}"), t.device)
        return getattr(rust, direction)(t)

    def _apply(self, direction: str, x, per_sample: tuple):
        t, back = as_tensor(x, f"{self.name}.{direction}")
        real_dtype_of(t, f"{self.name}.{direction}")
        single = per_sample is not None and t.dim() == len(per_sample)
        if single:
            t = t.unsqueeze(0)
        if direction in ("forward", "adjoint") and torch.is_grad_enabled() and t.requires_grad:
            out = _Linear.apply(t, self, direction)
        else:
            out = self._raw(direction, t)
        if single:
            out = out.squeeze(0)
        return back(out)

    def forward(self, x):
        """``A x`` for ``x`` of shape ``[B] + input_shape`` (or ``input_shape``)."""
        return self._apply("forward", x, self.input_shape)

    __call__ = forward

    def adjoint(self, y):
        """``Aᴴ y``, the exact adjoint, for ``y`` of shape ``[B] + output_shape``."""
        return self._apply("adjoint", y, self.output_shape)

    def pseudo_inverse(self, y):
        """``A⁺ y`` (or the operator's documented approximation of it)."""
        return self._apply("pseudo_inverse", y, self.output_shape)

    # The decomposition A = P(Λ)·T of the projection sampler (Song et al. 2022), where the
    # operator has one: ``transform`` (T x), ``inverse_transform`` (T⁻¹ z), ``subsample``
    # (P(Λ) z, so that A x = subsample(transform(x))), ``embed`` (a measurement placed in the
    # transformed domain) and ``mask`` (Λ).

    def transform(self, x):
        """``T x``."""
        return self._apply("transform", x, self.input_shape)

    def inverse_transform(self, z):
        """``T⁻¹ z`` (approximate for CT, where it is full-view FBP)."""
        return self._apply("inverse_transform", z, None)

    def subsample(self, z):
        """``P(Λ) z``: the measurement of the transformed-domain ``z``."""
        return self._apply("subsample", z, None)

    def embed(self, y):
        """``y`` placed in the transformed domain (0 where it determines nothing)."""
        return self._apply("embed", y, self.output_shape)

    def mask(self, device="cpu", dtype=torch.float32):
        """``Λ``: weights in ``[0, 1]`` broadcastable to the transformed domain."""
        return self._rust(dtype, torch.device(device)).mask(device_name(device))

    @property
    def has_decomposition(self) -> bool:
        """Whether ``A = P(Λ)·T`` (the projection sampler's decomposition) is available."""
        return self._rust(torch.float32, torch.device("cpu")).has_decomposition

    def __repr__(self) -> str:
        return self._rust(torch.float32, torch.device("cpu")).description


class Radon(Operator):
    """Parallel-beam Radon transform of ``size × size`` images ``[C, N, N]`` → sinograms
    ``[C, N, n_views]``.

    ``angles``: the number of uniformly spaced angles over ``[0°, 180°)`` (default 180) or a
    sequence of angles in degrees; ``views``: keep that many of a grid of ``angles`` angles,
    evenly spread (sparse-view CT, e.g. 23 of 180 as Song et al. 2022). ``filter``: the FBP
    filter of :meth:`fbp` (ramp, shepp-logan, cosine, hamming, hann).
    """

    _per_dtype_device = True

    def __init__(
        self,
        size: int,
        angles: int | Sequence[float] = 180,
        views: int | None = None,
        filter: str = "ramp",
        channels: int = 1,
        backend: str = "auto",
    ):
        if isinstance(angles, int):
            n_angles, degrees = angles, None
        else:
            degrees = [float(a) for a in angles]
            n_angles = len(degrees)

        def build(dtype, device):
            return _scoreinv.radon(
                size, n_angles, views, degrees, filter, channels, backend, dtype, device
            )

        super().__init__(build)

    def fbp(self, y):
        """Filtered back-projection over the measured angles (the pseudo-inverse)."""
        return self.pseudo_inverse(y)


class FanBeam(Operator):
    """Fan-beam CT: ``geometry`` is a dict of the geometry's fields (``source_to_isocenter_mm``,
    ``source_to_detector_mm``, ``n_detectors``, ``detector`` (curved or flat),
    ``detector_pitch``, ``detector_offset``, ``angles_deg``, ``image_size``,
    ``pixel_spacing_mm``) or the path of a TOML or JSON file with them. ``views``: keep that many
    of the angles, evenly spread. FBP with ``filter`` and ``weighting`` (auto, full-scan,
    parker)."""

    _per_dtype_device = True

    def __init__(
        self,
        geometry: dict | str | os.PathLike,
        views: int | None = None,
        filter: str = "ramp",
        weighting: str = "auto",
        channels: int = 1,
        backend: str = "auto",
    ):
        if isinstance(geometry, dict):
            text, path = json.dumps(geometry), None
        elif isinstance(geometry, (str, os.PathLike)):
            text, path = None, os.fspath(geometry)
        else:
            raise TypeError(
                f"geometry: expected a dict or the path of a TOML/JSON file, got "
                f"{type(geometry).__name__}"
            )

        def build(dtype, device):
            return _scoreinv.fanbeam(
                text, path, views, filter, weighting, channels, backend, dtype, device
            )

        super().__init__(build)

    def fbp(self, y):
        """Fan-beam filtered back-projection over the measured angles (the pseudo-inverse)."""
        return self.pseudo_inverse(y)


def _mask_args(mask):
    if isinstance(mask, str):
        return mask, None
    t, _ = as_tensor(mask, "mask")
    return None, t


class MriFourier(Operator):
    """Single-coil undersampled Fourier operator ``A = M F`` (orthonormal centred FFT) on
    ``[channels, H, W]`` images. ``mask``: a spec (``random:4``, ``equispaced:4``,
    ``equispaced-fixed:4``, ``gaussian:8``, ``poisson:4``, ``radial:32``; built with ``seed``)
    or a 0/1 array ``[H, W]`` on the centred k-space grid. ``complex_images``: complex images
    (else real ones, with ``Re`` in the adjoint)."""

    def __init__(
        self,
        shape,
        mask="random:4",
        channels: int = 1,
        seed: int = 0,
        complex_images: bool = False,
    ):
        h, w = _hw(shape)
        spec, array = _mask_args(mask)
        domain = "complex" if complex_images else "real"
        op = _scoreinv.mri_fourier(h, w, spec, array, channels, seed, domain)
        super().__init__(lambda dtype, device: op)


class SenseMri(Operator):
    """Multi-coil SENSE ``A = M F S`` (Pruessmann et al. 1999) with coil maps ``maps``
    (complex ``[coils, H, W]``) and a ``mask`` as :class:`MriFourier`'s."""

    def __init__(self, maps, mask="random:4", seed: int = 0, complex_images: bool = False):
        m, _ = as_tensor(maps, "maps")
        spec, array = _mask_args(mask)
        domain = "complex" if complex_images else "real"
        op = _scoreinv.sense_mri(m, spec, array, seed, domain)
        super().__init__(lambda dtype, device: op)


def mri_mask(spec: str, shape, seed: int = 0):
    """The k-space mask of ``spec`` for ``shape`` ``(H, W)``: ``(mask, acceleration)``, the
    mask a float32 0/1 tensor ``[H, W]`` (1 = sampled), the acceleration ``H·W / Σ mask``."""
    h, w = _hw(shape)
    return _scoreinv.mri_mask(spec, h, w, seed)


class Inpainting(Operator):
    """Inpainting ``y = Λ ⊙ x`` on ``[channels, H, W]`` images. ``mask``: a spec (``box``,
    ``box:SIZE``, ``random:FRACTION``, ``half``, ``half:left``, ``strokes``, ``strokes:SEED``;
    built with ``seed``) or a 0/1 array ``[H, W]`` (1 = observed)."""

    def __init__(self, shape, mask="box", channels: int = 1, seed: int = 0):
        h, w = _hw(shape)
        spec, array = _mask_args(mask)
        op = _scoreinv.inpainting(h, w, spec, array, channels, seed)
        super().__init__(lambda dtype, device: op)


class Grayscale(Operator):
    """Colorization: ``[3, H, W]`` RGB → the gray channel ``(R + G + B)/√3`` ``[1, H, W]`` of the
    orthonormal colour decoupling of score_sde (a gray image ``g`` is the measurement
    ``√3 · g``)."""

    def __init__(self, shape):
        h, w = _hw(shape)
        op = _scoreinv.grayscale(h, w)
        super().__init__(lambda dtype, device: op)


class Blur(Operator):
    """Blur of ``[channels, H, W]`` images by a Gaussian of ``sigma`` pixels or by a ``psf``
    ``[kh, kw]`` (odd sides, normalised to sum 1), with ``circular`` or ``zero`` boundary;
    ``epsilon`` regularises the (Wiener) pseudo-inverse."""

    def __init__(
        self,
        shape,
        sigma: float | None = None,
        psf=None,
        boundary: str = "circular",
        channels: int = 1,
        epsilon: float | None = None,
    ):
        h, w = _hw(shape)
        p = None if psf is None else as_tensor(psf, "psf")[0]
        op = _scoreinv.blur(h, w, sigma, p, boundary, channels, epsilon)
        super().__init__(lambda dtype, device: op)


def from_callables(
    forward: Callable,
    adjoint: Callable,
    input_shape: Sequence[int],
    output_shape: Sequence[int],
    pseudo_inverse: Callable | None = None,
    name: str = "python",
) -> Operator:
    """An operator defined in Python — ``forward(x)``, ``adjoint(y)`` and optionally
    ``pseudo_inverse(y)`` (default: the adjoint) on batches ``[B] + input_shape`` →
    ``[B] + output_shape`` — so that the library's methods (``dps``, ``ddim``, ``diffpir``, the
    baselines) run on it through :func:`scoreinv.reconstruct`. The library calls it from its own
    threads, taking the GIL for each call."""
    op = _scoreinv.callback_operator(
        str(name),
        [int(s) for s in input_shape],
        [int(s) for s in output_shape],
        forward,
        adjoint,
        pseudo_inverse,
    )
    return Operator._wrap(op)
