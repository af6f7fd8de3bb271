"""Tasks and reconstruction through Python against the command line: the same measurement,
the same reconstructions (bit for bit, same seed, CPU), the same metrics."""

import json
import subprocess

import numpy as np
import pytest
import torch

import scoreinv

SIZE = 64
SEED = 3


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def cli_run(scoreinv_bin, ct_model, tmp_path_factory):
    """`scoreinv simulate ct` and `scoreinv reconstruct ct --measurement` (fbp and 2 posterior
    samples of the score method with 4 steps), and a ground-truth study with fbp."""
    d = tmp_path_factory.mktemp("cli")
    y = d / "y.npy"
    run([scoreinv_bin, "simulate", "ct", "--ground-truth", "phantom:shepp-logan",
         "--size", str(SIZE), "--seed", str(SEED), "--out", str(y)])
    run([scoreinv_bin, "--device", "cpu", "reconstruct", "ct", "--measurement", str(y),
         "--model", str(ct_model), "--method", "fbp,score", "--steps", "4", "--samples", "2",
         "--seed", str(SEED), "--out", str(d / "rec")])
    run([scoreinv_bin, "--device", "cpu", "reconstruct", "ct", "--ground-truth",
         "phantom:shepp-logan", "--size", str(SIZE), "--method", "fbp", "--seed", str(SEED),
         "--out", str(d / "study")])
    return d


@pytest.fixture(scope="module")
def truth():
    return scoreinv.ground_truth("phantom:shepp-logan", size=SIZE)[0]


def test_simulate_equals_the_cli(cli_run, truth):
    task = scoreinv.Task("ct", size=SIZE, seed=SEED)
    y = task.simulate(truth)
    y_cli = np.load(cli_run / "y.npy")
    assert np.array_equal(y.squeeze(0).numpy(), y_cli)
    # control: another seed draws other noise
    assert not np.array_equal(task.simulate(truth, seed=SEED + 1).squeeze(0).numpy(), y_cli)


def test_reconstruct_equals_the_cli_bit_for_bit(cli_run, ct_model):
    task = scoreinv.Task("ct", size=SIZE, seed=SEED)
    y = torch.from_numpy(np.load(cli_run / "y.npy"))[None]  # [1, N, views]
    steps = []
    out = scoreinv.reconstruct(task, y, model=ct_model, method="fbp,score", steps=4, samples=2,
                               seed=SEED, progress=lambda m, d, t: steps.append((m, d, t)))
    assert set(out) == {"fbp", "score"}
    for method in ("fbp", "score"):
        cli = np.load(cli_run / "rec" / f"y_{method}.npy")
        assert np.array_equal(out[method].mean.numpy(), cli), method
    std_cli = np.load(cli_run / "rec" / "y_score_std.npy")
    assert np.array_equal(out["score"].std.numpy(), std_cli)
    assert out["score"].nfe is not None and out["fbp"].std is None
    # The settings as run, as the command line records them (and none for FBP).
    cli_doc = json.loads((cli_run / "rec" / "reconstructions.json").read_text())
    assert out["score"].settings == cli_doc["settings"]["methods"]["score"]
    assert out["score"].settings["n_steps"] == 4 and out["score"].settings["samples"] == 2
    assert out["fbp"].settings is None
    assert steps and steps[-1][0] == "score" and steps[-1][1] == steps[-1][2]
    # control: another seed gives other posterior samples
    other = scoreinv.reconstruct(task, y, model=ct_model, method="score", steps=4, samples=1,
                                 seed=SEED + 1)
    assert not np.array_equal(other.mean.numpy(), np.load(cli_run / "rec" / "y_score.npy"))


def test_metrics_equal_the_cli_and_scikit_image(cli_run, truth):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    task = scoreinv.Task("ct", size=SIZE, seed=SEED)
    y = task.simulate(truth)
    fbp = scoreinv.reconstruct(task, y, method="fbp", seed=SEED).mean
    records = json.loads((cli_run / "study" / "metrics.json").read_text())
    rows = records["records"] if isinstance(records, dict) else records
    row = next(r for r in rows if r["method"] == "fbp")
    assert scoreinv.psnr(truth, fbp) == row["psnr_db"]
    assert scoreinv.ssim(truth, fbp) == row["ssim"]
    a, b = truth[0].double().numpy(), fbp[0].double().numpy()
    assert scoreinv.psnr(truth, fbp) == pytest.approx(
        peak_signal_noise_ratio(a, b, data_range=1.0), abs=1e-9)
    assert scoreinv.ssim(truth, fbp) == pytest.approx(
        structural_similarity(a, b, data_range=1.0), abs=1e-9)


def test_save_figure_is_the_cli_figure(cli_run, truth, tmp_path):
    """The command line's per-case figure, drawn from Python: the same bytes for the same truth
    and reconstruction; another |error| gain draws another figure; bad input is a ValueError."""
    task = scoreinv.Task("ct", size=SIZE, seed=SEED)
    fbp = scoreinv.reconstruct(task, task.simulate(truth), method="fbp", seed=SEED).mean
    pngs = sorted((cli_run / "study").glob("*.png"))
    assert len(pngs) == 1, pngs
    out = tmp_path / "fig.png"
    scoreinv.save_figure(out, truth, {"fbp": fbp})
    assert out.read_bytes() == pngs[0].read_bytes()
    scoreinv.save_figure(out, truth, {"fbp": fbp}, error_gain=2.0)
    assert out.read_bytes() != pngs[0].read_bytes()
    with pytest.raises(ValueError, match="non-empty dict"):
        scoreinv.save_figure(out, truth, {})
    with pytest.raises(ValueError, match="error_gain"):
        scoreinv.save_figure(out, truth, {"fbp": fbp}, error_gain=0.0)


def test_baselines_by_default_and_tasks():
    assert set(scoreinv.TASKS) >= {"ct", "mri", "inpaint", "colorize", "deblur"}
    task = scoreinv.Task("mri", size=32, mask_kind="equispaced")
    assert task.settings["mask_kind"] == "equispaced"
    x = scoreinv.ground_truth("phantom:shepp-logan", size=32)[0]
    y = task.simulate(x, noise="none")
    out = scoreinv.reconstruct(task, y, method=[], tv_iters=20)
    assert set(out) == set(task.baselines)
    zf = out["zero-filled"].mean
    ref = task.operator().pseudo_inverse(y[None]).clamp(0, 1)[0]
    assert torch.equal(zf, ref)


def test_bad_inputs(ct_model, tmp_path):
    task = scoreinv.Task("ct", size=32, views=8)
    y = torch.zeros(1, 1, 32, 8)
    with pytest.raises(ValueError, match="NaN"):
        scoreinv.reconstruct(task, torch.full((1, 1, 32, 8), float("nan")), method="fbp")
    with pytest.raises(ValueError, match=r"measurement has shape \[1, 1, 32, 9\]"):
        scoreinv.reconstruct(task, torch.zeros(1, 1, 32, 9), method="fbp")
    with pytest.raises(ValueError, match="dtype torch.int64"):
        scoreinv.reconstruct(task, torch.zeros(1, 1, 32, 8, dtype=torch.int64), method="fbp")
    with pytest.raises(ValueError, match="`method` wiener"):
        scoreinv.reconstruct(task, y, method="wiener")
    with pytest.raises(ValueError, match="needs a trained model"):
        scoreinv.reconstruct(task, y, method="score")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        scoreinv.reconstruct(task, y, model=tmp_path / "missing", method="score")
    with pytest.raises(ValueError, match="steps 0"):
        scoreinv.reconstruct(task, y, model=ct_model, method="score", steps=0)
    with pytest.raises(TypeError, match="unknown settings"):
        scoreinv.reconstruct(task, y, model=ct_model, method="score", stpes=4)
    with pytest.raises(ValueError, match="unknown task 'pet'"):
        scoreinv.Task("pet", size=32)
    with pytest.raises(ValueError, match="CT needs gray images"):
        scoreinv.Task("ct", shape=(3, 32, 32))
    with pytest.raises(ValueError, match="ct settings"):
        scoreinv.Task("ct", size=32, views="many")
    with pytest.raises(ValueError, match="ct settings: unknown field 'veiws'"):
        scoreinv.Task("ct", size=32, veiws=23)


def test_an_operator_reconstructs_as_its_task(ct_model):
    """The Radon operator of scoreinv.ops with the ct task's methods gives the same bits as
    the ct task (same A, settings and seeding); fan-beam CT, which has no task, runs the ct
    task's methods."""
    x = scoreinv.ground_truth("phantom:shepp-logan", size=SIZE)[0]
    task = scoreinv.Task("ct", size=SIZE)
    y = task.simulate(x)
    kw = dict(model=ct_model, method="fbp,score", steps=3, seed=1)
    a = scoreinv.reconstruct(task, y, **kw)
    b = scoreinv.reconstruct(scoreinv.ops.Radon(SIZE, angles=180, views=23), y, **kw)
    for m in ("fbp", "score"):
        assert torch.equal(a[m].mean, b[m].mean), m
    geometry = {
        "source_to_isocenter_mm": 500.0,
        "source_to_detector_mm": 1000.0,
        "n_detectors": 96,
        "detector": "flat",
        "detector_pitch": 2.0,
        "angles_deg": [i * 2.0 for i in range(180)],
        "image_size": SIZE,
        "pixel_spacing_mm": 1.0,
    }
    fan = scoreinv.ops.FanBeam(geometry, views=30)
    yf = fan.forward(x[None])
    r = scoreinv.reconstruct(fan, yf, method="fbp,tv", tv_iters=50)
    assert scoreinv.psnr(x, r["tv"].mean[0]) > scoreinv.psnr(x, r["fbp"].mean[0])
