"""Score models through Python: loading, the score, Tweedie's denoiser, bad inputs."""

import pytest
import torch

import scoreinv


@pytest.fixture(scope="module")
def model(ct_model):
    return scoreinv.load_model(ct_model)


def test_load_model_exposes_config_and_sde(model):
    assert model.config["format"] == "scoreinv-model/1"
    assert model.sample_shape == (1, 64, 64)
    assert model.sde.kind == "ve"
    assert model.sde.config["sigma_max"] == 30.0
    m, s = model.sde.mean_coeff_std(1.0)
    assert m == 1.0 and s == pytest.approx(30.0)
    m, s = model.sde.mean_coeff_std(0.5)
    assert s == pytest.approx(0.01 * (30.0 / 0.01) ** 0.5)
    t = model.sde.time_of_noise_level(0.2)
    assert model.sde.noise_level(t) == pytest.approx(0.2, rel=1e-12)


def test_score_is_deterministic_and_batched(model):
    x = torch.rand(3, 1, 64, 64)
    t = torch.tensor([0.1, 0.5, 0.9])
    s = model.score(x, t)
    assert s.shape == x.shape and torch.isfinite(s).all()
    assert torch.equal(s, model.score(x, t))
    # the batch does not mix samples
    assert torch.allclose(model.score(x[1:2], t[1:2]), s[1:2], atol=1e-5)


def test_tweedie_denoiser_removes_noise(model):
    """On ellipse phantoms (the model's training distribution) D(x + σn, σ) is closer to x
    than x + σn; the identity (control) is not."""
    x = scoreinv.ground_truth("phantom:ellipses:5000..5002", size=64)
    g = torch.Generator().manual_seed(0)
    sigma = 0.1
    noisy = x + sigma * torch.randn(x.shape, generator=g)
    den = model.denoise(noisy, sigma)
    for i in range(x.shape[0]):
        p_noisy = scoreinv.psnr(x[i], noisy[i])
        p_den = scoreinv.psnr(x[i], den[i])
        assert p_den > p_noisy + 6.0, (p_noisy, p_den)


def test_score_records_autograd(model):
    x = torch.rand(1, 1, 64, 64, requires_grad=True)
    d = model.denoise(x, 0.05)
    d.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_bad_inputs(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        scoreinv.load_model(tmp_path / "no-such-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        scoreinv.load_model(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{\"format\": 1}")
    (bad / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="config.json"):
        scoreinv.load_model(bad)
    with pytest.raises(ValueError, match=r"x has shape \[1, 1, 32, 32\]"):
        model.score(torch.rand(1, 1, 32, 32), 0.5)
    with pytest.raises(ValueError, match="float32"):
        model.score(torch.rand(1, 1, 64, 64, dtype=torch.float64), 0.5)
    with pytest.raises(ValueError, match=r"t spans \[0, 0\]"):
        model.score(torch.rand(1, 1, 64, 64), 0.0)
    with pytest.raises(ValueError, match="sigma must be finite"):
        model.denoise(torch.rand(1, 1, 64, 64), float("nan"))


def test_sample_equals_the_cli(model, ct_model, scoreinv_bin, tmp_path):
    """Unconditional samples (PC, 6 steps) equal `scoreinv sample`'s samples.npy bit for bit
    for the same seed; another seed draws others (control)."""
    import subprocess

    import numpy as np

    out = tmp_path / "s"
    r = subprocess.run([scoreinv_bin, "--device", "cpu", "sample", "--model", str(ct_model),
                        "--n", "2", "--steps", "6", "--seed", "7", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cli = np.load(out / "samples.npy")
    calls = []
    x = model.sample(2, steps=6, seed=7, progress=lambda *a: calls.append(a))
    assert x.shape == (2, 1, 64, 64)
    assert np.array_equal(x.numpy(), cli)
    assert calls and calls[-1][1] == calls[-1][2]
    assert not np.array_equal(model.sample(2, steps=6, seed=8).numpy(), cli)
    with pytest.raises(ValueError, match="sampler option `stpes` is unknown"):
        model.sample(1, stpes=3)
    with pytest.raises(ValueError, match="n 0"):
        model.sample(0)


def test_class_guided_sample_equals_the_cli(scoreinv_bin, repo, tmp_path):
    """Class-conditional samples of the Fashion-MNIST prior guided by its time-dependent
    classifier equal `scoreinv sample --classifier` bit for bit; unguided ones differ."""
    import subprocess

    import numpy as np

    model_dir = repo / "data" / "models" / "fashion-mnist"
    clf = repo / "data" / "models" / "fashion-mnist-classifier"
    out = tmp_path / "g"
    r = subprocess.run([scoreinv_bin, "--device", "cpu", "sample", "--model", str(model_dir),
                        "--n", "2", "--steps", "21", "--seed", "2", "--classifier", str(clf),
                        "--class", "1,7", "--guidance-scale", "2", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cli = np.load(out / "samples.npy")
    m = scoreinv.load_model(model_dir)
    x = m.sample(2, steps=21, seed=2, classifier=clf, classes=[1, 7], guidance_scale=2.0)
    assert np.array_equal(x.numpy(), cli)
    assert not np.array_equal(m.sample(2, steps=21, seed=2).numpy(), cli)
    with pytest.raises(ValueError, match="`class` 12: the classifier has classes 0..9"):
        m.sample(2, steps=25, classifier=clf, classes=[12])
    with pytest.raises(FileNotFoundError):
        m.sample(2, steps=25, classifier=tmp_path / "none")
