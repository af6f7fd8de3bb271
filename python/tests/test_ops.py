"""The operators through Python: the adjoint dot-product test for every operator, forward
against independent torch/scipy references, autograd, zero-copy crossing, NumPy in/out, and
bad inputs."""

import math

import numpy as np
import pytest
import torch

import scoreinv
from scoreinv import _scoreinv, ops

FAN = {
    "source_to_isocenter_mm": 400.0,
    "source_to_detector_mm": 800.0,
    "n_detectors": 48,
    "detector": "curved",
    "detector_pitch": 0.7,
    "angles_deg": [i * 360.0 / 60 for i in range(60)],
    "image_size": 24,
    "pixel_spacing_mm": 8.0,
}


def _operators():
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(4, 16, 16, dtype=torch.complex128, generator=g)
    maps = maps / maps.abs().pow(2).sum(0, keepdim=True).sqrt()
    return {
        "radon": ops.Radon(24, angles=30),
        "radon-sparse": ops.Radon(24, angles=60, views=9, filter="hann"),
        "radon-degrees": ops.Radon(20, angles=[0.0, 33.0, 71.5, 140.0]),
        "fanbeam": ops.FanBeam(FAN),
        "fanbeam-sparse": ops.FanBeam(FAN, views=12),
        "mri": ops.MriFourier((16, 20), mask="random:4", seed=1),
        "mri-complex": ops.MriFourier(16, mask="radial:8", complex_images=True),
        "sense": ops.SenseMri(maps, mask="equispaced:2"),
        "inpaint": ops.Inpainting((16, 18), mask="random:0.3", channels=3, seed=2),
        "grayscale": ops.Grayscale((12, 10)),
        "blur-circular": ops.Blur((16, 16), sigma=1.5),
        "blur-zero": ops.Blur((14, 16), psf=np.ones((3, 5)), boundary="zero", channels=2),
    }


OPERATORS = _operators()


def _randn(shape, like_complex, g):
    if like_complex:
        return torch.complex(
            torch.randn(shape, dtype=torch.float64, generator=g),
            torch.randn(shape, dtype=torch.float64, generator=g),
        )
    return torch.randn(shape, dtype=torch.float64, generator=g)


def _dot(a, b):
    """Real inner product ``Re Σ conj(a) b``."""
    return (a.conj() * b).real.sum().item() if a.is_complex() else (a * b).sum().item()


def dot_test_error(op, adjoint, complex_images=False, batch=2):
    g = torch.Generator().manual_seed(7)
    x = _randn((batch,) + op.input_shape, complex_images, g)
    ax = op.forward(x)
    y = _randn(tuple(ax.shape), ax.is_complex(), g)
    aty = adjoint(y)
    lhs, rhs = _dot(ax, y), _dot(x, aty)
    return abs(lhs - rhs) / max(abs(lhs), 1e-300)


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_adjoint_dot_product(name):
    op = OPERATORS[name]
    err = dot_test_error(op, op.adjoint, complex_images=name == "mri-complex")
    assert err < 1e-10, f"{name}: |<Ax,y> - <x,Aᴴy>| / |<Ax,y>| = {err:.2e}"


def test_dot_product_test_catches_a_wrong_adjoint():
    """Control: FBP is not the adjoint of the Radon transform, and 1.001·Aᴴ is not either."""
    op = OPERATORS["radon"]
    assert dot_test_error(op, op.fbp) > 1e-2
    assert dot_test_error(op, lambda y: 1.001 * op.adjoint(y)) > 5e-4


def test_shapes_and_repr():
    op = ops.Radon(32, angles=180, views=23)
    assert op.input_shape == (1, 32, 32)
    assert op.output_shape == (1, 32, 23)
    assert op.name == "radon"
    assert op.has_decomposition
    assert "23 of 180" in repr(op)


def test_mri_forward_is_the_masked_orthonormal_centred_fft():
    op = ops.MriFourier((16, 20), mask="random:4", seed=3)
    mask, accel = ops.mri_mask("random:4", (16, 20), seed=3)
    assert accel == pytest.approx(16 * 20 / mask.sum().item())
    x = torch.rand(2, 1, 16, 20, dtype=torch.float64)
    ref = torch.fft.fftshift(
        torch.fft.fft2(torch.fft.ifftshift(x, dim=(-2, -1)), norm="ortho"), dim=(-2, -1)
    ) * mask.to(torch.float64)
    got = op.forward(x)
    assert got.dtype == torch.complex128
    assert torch.allclose(got, ref, atol=1e-12)
    # a different seed gives a different mask, hence a different result (control)
    other = ops.MriFourier((16, 20), mask="random:4", seed=4)
    assert not torch.allclose(other.forward(x), ref, atol=1e-6)


def test_inpainting_grayscale_and_blur_against_references():
    from scipy.ndimage import gaussian_filter

    g = torch.Generator().manual_seed(1)
    mask = (torch.rand(12, 14, generator=g) > 0.5).to(torch.float64)
    x = torch.rand(2, 3, 12, 14, dtype=torch.float64, generator=g)
    assert torch.equal(ops.Inpainting((12, 14), mask=mask, channels=3).forward(x), x * mask)
    gray = ops.Grayscale((12, 14)).forward(x)
    assert torch.allclose(gray, x.sum(1, keepdim=True) / math.sqrt(3), atol=1e-12)
    img = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=g)
    blurred = ops.Blur((16, 16), sigma=1.2).forward(img)
    ref = gaussian_filter(img[0, 0].numpy(), sigma=1.2, mode="wrap")
    assert np.allclose(blurred[0, 0].numpy(), ref, atol=1e-10)


def test_radon_of_a_gaussian_is_its_analytic_line_integral():
    """f = exp(−ρ²/(2w²)) centred on the rotation centre (N/2, N/2; scikit-image's convention)
    projects to √(2π)·w·exp(−s²/(2w²)) at every angle (pixel units, s from bin N/2)."""
    n, w = 64, 5.0
    c = n // 2
    yy, xx = torch.meshgrid(torch.arange(n, dtype=torch.float64),
                            torch.arange(n, dtype=torch.float64), indexing="ij")
    blob = torch.exp(-((yy - c) ** 2 + (xx - c) ** 2) / (2 * w * w))
    sino = ops.Radon(n, angles=12).forward(blob[None, None])[0, 0]  # [n_det, angles]
    s = torch.arange(n, dtype=torch.float64) - c
    exact = math.sqrt(2 * math.pi) * w * torch.exp(-s * s / (2 * w * w))
    err = (sino - exact[:, None]).abs().max() / exact.max()
    assert err < 0.01, err
    # control: a blob off the centre by one pixel is not its projection
    shifted = torch.roll(blob, 1, dims=1)
    moved = ops.Radon(n, angles=12).forward(shifted[None, None])[0, 0]
    assert (moved - exact[:, None]).abs().max() / exact.max() > 0.05


def test_radon_equals_scikit_image():
    from skimage.transform import radon

    x = scoreinv.ground_truth("phantom:shepp-logan", size=48)[0, 0].double()
    theta = [0.0, 17.0, 45.0, 90.5, 133.0]
    ours = ops.Radon(48, angles=theta).forward(x[None, None])[0, 0].numpy()
    ref = radon(x.numpy(), theta=theta, circle=True)
    assert np.allclose(ours, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())


def test_fbp_inverts_full_view_radon():
    n = 64
    x = scoreinv.ground_truth("phantom:shepp-logan", size=n).to(torch.float64)
    op = ops.Radon(n, angles=180)
    rec = op.fbp(op.forward(x))
    inside = torch.zeros(n, n, dtype=torch.bool)
    c = (n - 1) / 2
    for i in range(n):
        for j in range(n):
            inside[i, j] = (i - c) ** 2 + (j - c) ** 2 < (0.4 * n) ** 2
    rel = (rec - x)[..., inside].norm() / x[..., inside].norm()
    assert rel < 0.25, rel
    # control: the adjoint alone is no inverse
    bp = op.adjoint(op.forward(x))
    assert ((bp - x)[..., inside].norm() / x[..., inside].norm()) > 1.0


def test_autograd_through_forward_and_adjoint():
    op = ops.Radon(8, angles=5)
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op.forward, (x,))
    y = torch.rand(1, 1, 8, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op.adjoint, (y,))
    # ∇ ½‖A x‖² = Aᴴ A x
    loss = 0.5 * op.forward(x).pow(2).sum()
    (g,) = torch.autograd.grad(loss, x)
    assert torch.allclose(g, op.adjoint(op.forward(x.detach())), atol=1e-12)
    mri = ops.MriFourier(8, mask="random:2")
    xm = torch.rand(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: torch.view_as_real(mri.forward(v)), (xm,))


def test_tensors_cross_without_copy():
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    back = _scoreinv.roundtrip(t)
    assert back.data_ptr() == t.data_ptr()
    back[0, 0] = 42.0  # the same storage: the write is seen through the original
    assert t[0, 0].item() == 42.0
    a = np.zeros((5, 5), dtype=np.float64)
    ta = _scoreinv.roundtrip(torch.from_numpy(a))
    assert ta.data_ptr() == a.ctypes.data


def test_numpy_in_numpy_out():
    op = ops.Radon(16, angles=10)
    x = np.random.default_rng(0).random((1, 16, 16))  # one sample, no batch axis
    y = op.forward(x)
    assert isinstance(y, np.ndarray) and y.shape == (1, 16, 10)
    assert np.array_equal(y, op.forward(torch.from_numpy(x)).numpy())
    assert isinstance(op.fbp(y), np.ndarray)


def test_float32_and_float64_build_their_own_operator():
    op = ops.Radon(16, angles=10)
    x = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    y64 = op.forward(x)
    y32 = op.forward(x.float())
    assert y64.dtype == torch.float64 and y32.dtype == torch.float32
    assert torch.allclose(y32.double(), y64, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_stay_on_the_gpu():
    op = ops.Radon(32, angles=20)
    x = torch.rand(2, 1, 32, 32, device="cuda")
    y = op.forward(x)
    assert y.device == x.device
    assert torch.allclose(y.cpu(), op.forward(x.cpu()), atol=1e-3)
    z = torch.rand(2, 1, 32, 20, device="cuda", dtype=torch.float64)
    ax = op.forward(x.double())
    assert abs(_dot(ax, z) - _dot(x.double(), op.adjoint(z))) / abs(_dot(ax, z)) < 1e-10


def test_bad_inputs_raise_value_errors():
    op = ops.Radon(16, angles=10)
    with pytest.raises(ValueError,
                       match=r"radon: image has shape \[2, 1, 16, 15\], expected \[B, 1, 16, 16\]"):
        op.forward(torch.zeros(2, 1, 16, 15))
    with pytest.raises(ValueError, match="dtype torch.int64"):
        op.forward(torch.zeros(1, 1, 16, 16, dtype=torch.int64))
    with pytest.raises(TypeError, match="expected a torch.Tensor or a numpy.ndarray"):
        op.forward([[0.0]])
    with pytest.raises(ValueError, match="bad MRI mask spec 'random:zero'"):
        ops.MriFourier(16, mask="random:zero")
    with pytest.raises(ValueError, match="mask: shape \\[4, 4\\], expected \\[16, 16\\]"):
        ops.Inpainting(16, mask=np.ones((4, 4)))
    with pytest.raises(ValueError, match="filter 'sharp'"):
        ops.Radon(16, filter="sharp")
    with pytest.raises(ValueError, match="n_views|views"):
        ops.Radon(16, angles=10, views=11)
    with pytest.raises(ValueError, match="fan-beam geometry"):
        ops.FanBeam({"image_size": 8})
    with pytest.raises(FileNotFoundError, match="nowhere.toml"):
        ops.FanBeam("/nonexistent/nowhere.toml")
    with pytest.raises(ValueError, match="sigma|blur"):
        ops.Blur(16, sigma=-1.0)


def test_fanbeam_geometry_from_a_toml_file(tmp_path):
    lines = [f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"' for k, v in FAN.items()]
    (tmp_path / "fan.toml").write_text("\n".join(lines).replace("'", '"') + "\n")
    from_file = ops.FanBeam(tmp_path / "fan.toml")
    x = torch.rand(1, 1, 24, 24, dtype=torch.float64)
    assert torch.equal(from_file.forward(x), OPERATORS["fanbeam"].forward(x))


def test_decomposition_reproduces_the_operator():
    """A x = P(Λ)(T x) for the operators with the projection sampler's decomposition, and the
    embedded measurement is subsampled back to itself."""
    for name in ("radon-sparse", "fanbeam-sparse", "mri", "inpaint", "grayscale", "blur-circular"):
        op = OPERATORS[name]
        assert op.has_decomposition, name
        x = torch.rand((2,) + op.input_shape, dtype=torch.float64)
        ax = op.forward(x)
        assert torch.allclose(op.subsample(op.transform(x)), ax, atol=1e-10), name
        if name != "blur-circular":  # Wiener embedding: only Λ ⊙ embed(y) is exact
            assert torch.allclose(op.subsample(op.embed(ax)), ax, atol=1e-10), name
        lam = op.mask(dtype=torch.float64)
        assert float(lam.min()) >= 0.0 and float(lam.max()) <= 1.0, name
    assert not OPERATORS["sense"].has_decomposition
    with pytest.raises(ValueError, match="needs the decomposition"):
        OPERATORS["sense"].transform(torch.rand((1,) + OPERATORS["sense"].input_shape))


def _ticks_while(call):
    """How many loop turns the main thread makes while another thread runs ``call``, with a
    switch interval of 1 s: a call holding the GIL keeps the main thread out to its end."""
    import sys
    import threading

    inside = threading.Event()
    done = threading.Event()

    def work():
        inside.set()
        call()
        done.set()

    old = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    try:
        th = threading.Thread(target=work)
        th.start()
        inside.wait()
        ticks = 0
        while not done.is_set():
            ticks += 1
        th.join()
    finally:
        sys.setswitchinterval(old)
    return ticks


def test_long_calls_release_the_gil():
    """While one thread is inside the Rust library, another runs Python."""
    op = ops.Radon(192, angles=180)
    x = torch.rand(8, 1, 192, 192)
    op.forward(x)  # warm-up (tables built)
    assert _ticks_while(lambda: op.forward(x)) > 1000
    # control: a call of pure Python holding the GIL lets the other thread count (almost) nothing
    assert _ticks_while(lambda: sum(i * i for i in range(300_000))) < 1000


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_libtorch_failure_is_a_runtime_error():
    """libtorch refusing a CUDA tensor without CUDA surfaces as RuntimeError, not a crash."""
    with pytest.raises(RuntimeError):
        _scoreinv.radon(16, 10, None, None, "ramp", 1, "sparse", "float32", "cuda:0")
