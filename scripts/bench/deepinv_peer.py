"""deepinv peer harness for `scoreinv bench deepinv`: deepinv 0.5's DPS (Chung et al., ICLR
2023) and DiffPIR (Zhu et al., CVPRW 2023) against scoreinv's validated few-step samplers, with
the same network weights, on the same measurements, in one process on the same threads.

Per task (CT: ct-ellipses, 23 of 180 parallel views, 64², noise gaussian:0.005; MRI 4×:
mri-brain on Colin27 slices; box inpainting: fashion-mnist):

* measurements y = A x + n are made once by scoreinv (`Task.simulate`, seed = case index) and
  saved (`measurements.npz`); both sides reconstruct these very arrays;
* deepinv runs on its OWN physics (`Tomography`, `MRI`, `Inpainting`), checked against
  scoreinv's operator on the test images first (relative L2 difference after the convention
  mapping, written to the output), and for CT also on scoreinv's operator wrapped by
  `scoreinv.deepinv.physics` (the sampler alone, without the operator mismatch);
* the network is scoreinv's safetensors loaded into the pure PyTorch NCSN++ of
  `ncsnpp_torch.py`, a deepinv denoiser by Tweedie's formula D(x, σ) = x + σ² ∇log p_σ(x) on
  images in [0, 1] (VE: the score at σ; VP: x/m(t) − (s(t)/m(t)) ε(m x, 999 t) at the t with
  s/m = σ; a centred model sees 2x − 1 and 2σ; σ clamped to the SDE's range as
  `scoreinv.Model.denoise` clamps it). Checked against `scoreinv.Model.denoise` first;
* deepinv's step sizes (DPS `weight`, DiffPIR `lambda_`) are chosen on a validation image
  disjoint from the test images (best PSNR of a small grid, at the same NFE, on deepinv's
  physics; the CT rows on scoreinv's operator reuse them);
* scoreinv runs through its Python module (`scoreinv.reconstruct`, the library of the CLI) with
  the settings of docs/results/fewstep (start tv, t0, steps = NFE / t0; or a cold start, steps
  = NFE, with its validated sampler settings), with K = 1 (equal NFE per case) and the
  validated K.

NFE are counted by wrapping the denoiser (one call on a batch of one = one NFE; DPS also
differentiates through it). Writes OUT/deepinv-peer.json and prints its summary as the last
line of standard output (JSON), for the bench harness.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ncsnpp_torch  # noqa: E402

COLIN27 = "/usr/share/mricron/templates/ch2better.nii.gz"

# The studies of scripts/eval/fewstep at 50 NFE (docs/results/fewstep/val-*.txt). `ours`: the
# validated few-step sampler, a warm start from `start` (default TV) at `t0` or, with `start`
# "noise", a cold start; `settings`: its validated sampler settings (the models' `config.json`
# record the same).
TASKS = {
    "ct": dict(
        label="ct-ellipses 23 views",
        model="ct-ellipses",
        task=("ct", dict(size=64, views=23, angles=180)),
        noise="gaussian:0.005",
        test="phantom:ellipses:1000..{end}",
        val="phantom:ellipses:2000..2001",
        size=64,
        ours=dict(method="ddim", t0=0.1, samples=4, sigma_y=0.005,
                  settings=dict(start_iters=300)),
    ),
    "mri": dict(
        label="mri-brain 4x",
        model="mri-brain",
        task=("mri", dict(size=64, acceleration=4)),
        noise=None,
        test=COLIN27 + "#z=110..{end}:30",
        val=COLIN27 + "#z=125..126",
        size=64,
        ours=dict(method="diffpir", start="zero-filled", t0=0.3, samples=4,
                  settings=dict(diffpir_zeta=1.0, diffpir_lambda=0.03, sigma_y=0.001)),
    ),
    "inpaint": dict(
        label="fashion-mnist box inpainting",
        model="fashion-mnist",
        task=("inpaint", dict(shape=(1, 28, 28), mask="box")),
        noise=None,
        test="fashion-mnist:0..{end}",
        val="fashion-mnist:1000..1001",
        size=None,
        ours=dict(method="diffpir", start="noise", samples=1, settings=dict(diffpir_zeta=1.0)),
    ),
}

# Grids of deepinv's step sizes tried on the validation image, per task: DPS's `weight` of the
# residual norm ("norm" guidance) around the best of a decade sweep 1..1000 at 50 NFE (CT
# diverges above 1; MRI and inpainting need ~100), DiffPIR's lambda around its default 7.
DPS_WEIGHTS = {"ct": (0.3, 1.0, 3.0), "mri": (30.0, 100.0, 300.0), "inpaint": (30.0, 100.0, 300.0)}
DIFFPIR_LAMBDAS = (1.0, 7.0, 25.0)
# DiffPIR's ρ_t = λ σ_y² / σ_t² needs σ_y > 0: the noiseless tasks use this floor.
DIFFPIR_SIGMA_FLOOR = 1e-3


def rel(a, b):
    return float((a - b).abs().pow(2).sum().sqrt() / b.abs().pow(2).sum().sqrt())


# ------------------------------------------------------------------ network as a denoiser
class TorchTweedie(torch.nn.Module):
    """Tweedie's formula on the PyTorch NCSN++ for images in [0, 1]; counts its calls."""

    def __init__(self, model_dir, sampling_eps, channels_in=None):
        super().__init__()
        cfg = json.load(open(os.path.join(model_dir, "config.json")))
        self.net = ncsnpp_torch.NCSNpp(cfg["model"])
        ncsnpp_torch.load_weights(self.net, os.path.join(model_dir, "model.safetensors"))
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.sde = cfg["sde"]
        self.centered = cfg["data"].get("centered", False)
        self.eps = sampling_eps
        # MRI in deepinv: images of 2 channels (real, imaginary); the prior is on real images,
        # so the real channel is denoised and the imaginary one is set to 0.
        self.channels_in = channels_in
        self.nfe = 0

    def _ve(self, xm, sig):
        smin, smax = self.sde["sigma_min"], self.sde["sigma_max"]
        lo = smin * (smax / smin) ** self.eps
        s = sig.clamp(lo, smax)
        score = self.net(xm, s)
        return xm + (s * s).view(-1, 1, 1, 1) * score

    def _vp(self, z, sig):
        b0, b1 = self.sde["beta_min"], self.sde["beta_max"]
        # σ² = exp(B(t)) − 1 with B(t) = b0 t + (b1 − b0) t² / 2
        big_b = torch.log1p(sig * sig)
        t = (-b0 + torch.sqrt(b0 * b0 + 2 * (b1 - b0) * big_b)) / (b1 - b0)
        t = t.clamp(self.eps, 1.0)
        big_b = b0 * t + 0.5 * (b1 - b0) * t * t
        m = torch.exp(-0.5 * big_b).view(-1, 1, 1, 1)
        s = torch.sqrt(1 - m * m)
        eps = self.net(m * z, 999.0 * t)
        return z - (s / m) * eps

    def forward(self, x, sigma, *args, **kwargs):
        self.nfe += 1
        dtype = x.dtype
        b = x.shape[0]
        sig = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).flatten()
        if sig.numel() == 1:
            sig = sig.expand(b)
        full = x
        if self.channels_in is not None:
            x = x[:, :1]
        x = x.to(torch.float32)
        scale = 2.0 if self.centered else 1.0
        z = 2 * x - 1 if self.centered else x
        if self.sde["type"] == "ve":
            d = self._ve(z, scale * sig)
        else:
            d = self._vp(z, scale * sig)
        d = (d + 1) / 2 if self.centered else d
        d = d.to(dtype)
        if self.channels_in is not None:
            d = torch.cat([d, torch.zeros_like(full[:, 1:])], 1)
        return d


# ------------------------------------------------------------------ deepinv physics
def kept_angles_deg(views, angles):
    """scoreinv's sparse views: round_half_even(linspace(0, A − 1, n)) of linspace(0, 180, A)."""
    idx = np.round(np.linspace(0, angles - 1, views)).astype(int)
    return torch.tensor(idx * 180.0 / angles, dtype=torch.float32)


def deepinv_physics(dinv, name, op, x, y_ours):
    """deepinv's own physics for a task, the map of scoreinv's y onto it, and the check."""
    if name == "ct":
        s = dict(TASKS["ct"]["task"][1])
        phys = dinv.physics.Tomography(
            angles=kept_angles_deg(s["views"], s["angles"]),
            img_width=s["size"],
            circle=True,
            normalize=False,
        )
        ax = op.forward(x)
        ad = phys.A(x)
        c = float((ad * ax).sum() / (ad * ad).sum())
        check = dict(
            deepinv="Tomography(angles=scoreinv's kept angles in degrees, circle=True, "
            "normalize=False)",
            mapping="y_deepinv = y / c with c the least-squares scale of A_scoreinv x on "
            "A_deepinv x (same angles, same detector order); deepinv rotates the image with "
            "grid_sample about (N-1)/2, scoreinv (as scikit-image) about N/2 with its own "
            "bilinear weights",
            scale_c=c,
            rel_l2_diff=rel(c * ad, ax),
            rel_l2_diff_unscaled=rel(ad, ax),
        )
        return phys, (lambda y: y / c), c, check
    if name == "mri":
        mask = op.mask().reshape(x.shape[-2:])
        phys = dinv.physics.MRI(mask=mask, img_size=(2,) + tuple(x.shape[-2:]))
        x2 = torch.cat([x, torch.zeros_like(x)], 1)
        ad = phys.A(x2)
        ax = op.forward(x)
        ax2 = torch.cat([ax.real, ax.imag], 1)
        check = dict(
            deepinv="MRI(mask=scoreinv's mask, img_size=(2, 64, 64))",
            mapping="images: 2 channels (real, imaginary = 0); y_deepinv = [Re y, Im y] on the "
            "channel axis; both use the orthonormal 2-D FFT with the DC term at index 0 "
            "(no fftshift) and the same mask",
            scale_c=1.0,
            rel_l2_diff=rel(ad, ax2),
        )
        return phys, (lambda y: torch.cat([y.real, y.imag], 1)), 1.0, check
    mask = op.mask()
    phys = dinv.physics.Inpainting(img_size=tuple(x.shape[1:]), mask=mask)
    check = dict(
        deepinv="Inpainting(img_size=(1, 28, 28), mask=scoreinv's box mask)",
        mapping="none: y = mask * x on the image grid for both",
        scale_c=1.0,
        rel_l2_diff=rel(phys.A(x), op.forward(x)),
    )
    return phys, (lambda y: y), 1.0, check


def first_channel(x):
    return x[:, :1]


# ------------------------------------------------------------------ runs
def run_dps(dinv, den, phys, y, nfe, weight, seed):
    # The ancestral DDPM solver evaluates the denoiser at num_steps - 2 of its num_steps - 1
    # steps (not at t = 0) and once more to denoise the output: num_steps = NFE + 1.
    dps = dinv.sampling.DPS(den, schedule="vp", solver="ddpm", num_steps=nfe + 1, weight=weight,
                            dtype=torch.float32)
    return dps(y, phys, seed=seed)


def run_diffpir(dinv, den, phys, y, nfe, lam, sigma, seed):
    phys.noise_model = dinv.physics.GaussianNoise(sigma=max(sigma, DIFFPIR_SIGMA_FLOOR))
    dp = dinv.sampling.DiffPIR(den, data_fidelity=dinv.optim.data_fidelity.L2(),
                               sigma=max(sigma, DIFFPIR_SIGMA_FLOOR), max_iter=nfe, zeta=0.3,
                               lambda_=lam)
    x0 = phys.A_dagger(y).clamp(0, 1)
    torch.manual_seed(seed)
    return dp(y, phys, x_init=x0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--models", default="data/models")
    ap.add_argument("--tasks", default="ct,mri,inpaint")
    ap.add_argument("--cases", default="ct=4,mri=4,inpaint=8",
                    help="test cases per task: N for every task or TASK=N,... (MRI: at most 4)")
    ap.add_argument("--nfe", type=int, default=50)
    ap.add_argument("--dps-extra-nfe", default="", help="e.g. 100,200: DPS also at these NFE")
    ap.add_argument("--extra-cases", type=int, default=2, help="cases of the extra DPS rows")
    ap.add_argument("--no-tune", action="store_true",
                    help="deepinv at its defaults (DPS weight 1, DiffPIR lambda 7)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import deepinv as dinv
    import scoreinv

    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    for t in tasks:
        if t not in TASKS:
            sys.exit(f"deepinv_peer: --tasks: unknown task '{t}' (ct, mri, inpaint)")
    try:
        if "=" in args.cases:
            cases = {k.strip(): int(v) for k, v in (p.split("=") for p in args.cases.split(","))}
        else:
            cases = {t: int(args.cases) for t in TASKS}
    except ValueError:
        sys.exit(f"deepinv_peer: --cases '{args.cases}': expected N or TASK=N,...")
    if any(cases.get(t, 0) < 1 for t in tasks) or args.nfe < 2:
        sys.exit(f"deepinv_peer: --cases '{args.cases}' must give each task >= 1 case and "
                 f"--nfe ({args.nfe}) must be >= 2")
    extra = [int(v) for v in args.dps_extra_nfe.split(",") if v.strip()]

    class Den(dinv.models.Denoiser):
        def __init__(self, tw):
            super().__init__()
            self.tw = tw

        def forward(self, x, sigma, *a, **k):
            return self.tw(x, sigma)

    result = dict(nfe=args.nfe, threads=args.threads, deepinv=dinv.__version__,
                  torch=torch.__version__, tasks={})
    measurements = {}
    for name in tasks:
        spec = TASKS[name]
        mdir = os.path.join(args.models, spec["model"])
        if not os.path.isfile(os.path.join(mdir, "model.safetensors")):
            sys.exit(f"deepinv_peer: --models: no {mdir}/model.safetensors")
        tname, tset = spec["task"]
        task = scoreinv.Task(tname, **tset)
        op = task.operator()
        model = scoreinv.load_model(mdir)
        n_end = 1000 + cases[name] if name == "ct" else (
            110 + 30 * (min(cases[name], 4) - 1) + 1 if name == "mri" else cases[name])
        truth = scoreinv.ground_truth(spec["test"].format(end=n_end), size=spec["size"])
        val = scoreinv.ground_truth(spec["val"], size=spec["size"])
        log = lambda m: print(f"deepinv_peer: {name}: {m}", file=sys.stderr, flush=True)  # noqa
        log(f"{truth.shape[0]} test cases, {val.shape[0]} validation cases")

        def simulate(xs, seed0):
            ys = [task.simulate(xs[i], noise=spec["noise"], seed=seed0 + i) for i in range(len(xs))]
            return torch.stack(ys)

        y = simulate(truth, 0)
        yv = simulate(val, 100)
        measurements[f"{name}_truth"] = truth.numpy()
        measurements[f"{name}_y"] = (torch.view_as_real(y) if y.is_complex() else y).numpy()
        ax = op.forward(truth)
        sig_abs = [float((y[i] - ax[i]).abs().pow(2).mean().sqrt()) for i in range(len(y))]
        axv = op.forward(val)
        sig_abs_v = [float((yv[i] - axv[i]).abs().pow(2).mean().sqrt()) for i in range(len(yv))]

        # Checks: deepinv's forward against ours; the PyTorch denoiser against scoreinv's.
        phys, to_d, c, check = deepinv_physics(dinv, name, op, truth, y)
        tw = TorchTweedie(mdir, model.sde.sampling_eps,
                          channels_in=2 if name == "mri" else None)
        den = Den(tw)
        torch.manual_seed(0)
        den_check = {}
        for s in (0.02, 0.2, 2.0):
            noisy = truth[:2] + s * torch.randn_like(truth[:2])
            with torch.no_grad():
                a = tw(noisy, s)
            b = model.denoise(noisy, s)
            den_check[str(s)] = float((a - b).abs().max() / b.abs().max())
        log(f"operator rel. L2 diff {check['rel_l2_diff']:.3e} (scale {c:.4f}); "
            f"denoiser max rel. diff {max(den_check.values()):.2e}")
        if max(den_check.values()) > 1e-3:
            sys.exit(f"deepinv_peer: {name}: the PyTorch denoiser differs from scoreinv's "
                     f"({den_check}); not the same network")

        tuned = {}
        physics_variants = [("deepinv", phys, to_d, c)]
        if name == "ct":
            import scoreinv.deepinv as sdi
            physics_variants.append(("scoreinv-op", sdi.physics(op), lambda v: v, 1.0))

        def evaluate(fn, xs, ys, sigmas):
            outs, secs, nfes = [], [], []
            for i in range(len(xs)):
                tw.nfe = 0
                t0 = time.perf_counter()
                out = fn(ys[i:i + 1], sigmas[i], i)
                secs.append(time.perf_counter() - t0)
                nfes.append(tw.nfe)
                outs.append(first_channel(out).detach().float())
            out = torch.cat(outs)
            psnr = [scoreinv.psnr(xs[i], out[i]) for i in range(len(xs))]
            ssim = [scoreinv.ssim(xs[i], out[i]) for i in range(len(xs))]
            return dict(psnr_db=psnr, ssim=ssim, seconds=secs, nfe=nfes)

        rows = []

        def row(method, operator, k, r, **extra_fields):
            d = dict(method=method, operator=operator, samples=k,
                     nfe_per_case=float(np.mean(r["nfe"])),
                     mean_psnr_db=float(np.mean(r["psnr_db"])), mean_ssim=float(np.mean(r["ssim"])),
                     mean_seconds=float(np.mean(r["seconds"])), per_case=r, **extra_fields)
            rows.append(d)
            log(f"{method:<28} {operator:<12} K={k} NFE/case {d['nfe_per_case']:.0f}: "
                f"PSNR {d['mean_psnr_db']:.2f} SSIM {d['mean_ssim']:.4f} "
                f"{d['mean_seconds']:.2f} s/case")

        # scoreinv: the validated few-step sampler, K = 1 and the validated K.
        o = spec["ours"]
        cold = o.get("start") == "noise"
        steps = args.nfe if cold else round(args.nfe / o["t0"])
        ks = sorted({1, o["samples"]})
        for k in ks:
            def ours(yi, _s, i, k=k):
                kw = dict(start="noise") if cold else dict(start=o.get("start", "tv"), t0=o["t0"])
                if "sigma_y" in o:
                    kw["sigma_y"] = o["sigma_y"]
                kw.update(o.get("settings", {}))
                r = scoreinv.reconstruct(task, yi, model=mdir, method=o["method"], steps=steps,
                                         samples=k, seed=i, **kw)
                tw.nfe = r.nfe * k
                return r.mean
            r = evaluate(ours, truth, y, sig_abs)
            how = "cold" if cold else f"t0 {o['t0']}, start {o.get('start', 'tv')}"
            how += "".join(f", {key} {v:g}" for key, v in o.get("settings", {}).items())
            row(f"scoreinv {o['method']} ({how})", "scoreinv", k, r,
                nfe_per_sample=float(np.mean(r["nfe"])) / k, steps=steps)
        # deepinv: step sizes chosen on the validation images, then the test images.
        for opname, ph, to, cc in physics_variants:
            yd, yvd = to(y), to(yv)
            sd = [s / cc for s in sig_abs]
            svd = [s / cc for s in sig_abs_v]
            for method, grid in (("dps", DPS_WEIGHTS[name]), ("diffpir", DIFFPIR_LAMBDAS)):
                def fn(p, n):
                    if method == "dps":
                        return lambda yi, s, i: run_dps(dinv, den, ph, yi, n, p, seed=i + 1)
                    return lambda yi, s, i: run_diffpir(dinv, den, ph, yi, n, p, s, seed=i + 1)
                default = 1.0 if method == "dps" else 7.0
                tuning = {}
                if args.no_tune:
                    best = default
                elif method in tuned:
                    best = tuned[method]
                else:
                    for p in grid:
                        tuning[str(p)] = float(np.mean(
                            evaluate(fn(p, args.nfe), val, yvd, svd)["psnr_db"]))
                    best = float(max(tuning, key=tuning.get))
                    tuned[method] = best
                r = evaluate(fn(best, args.nfe), truth, yd, sd)
                pname = "weight" if method == "dps" else "lambda"
                row(f"deepinv {method.upper() if method == 'dps' else 'DiffPIR'} "
                    f"({pname} {best:g})",
                    opname, 1, r, step_size=best, validation_psnr_db=tuning)
                if method == "dps" and opname == "deepinv":
                    for n in extra:
                        m = min(args.extra_cases, len(truth))
                        r = evaluate(fn(best, n), truth[:m], yd[:m], sd[:m])
                        row(f"deepinv DPS (weight {best:g}) {n} NFE, first {m} cases", opname, 1, r,
                            step_size=best)
        result["tasks"][name] = dict(
            label=spec["label"], model=spec["model"], cases=int(len(truth)),
            test=spec["test"].format(end=n_end), validation=spec["val"], noise=spec["noise"],
            sigma_y_abs=sig_abs, operator_check=check, denoiser_check_max_rel=den_check,
            rows=rows)
    np.savez_compressed(os.path.join(args.out, "measurements.npz"), **measurements)
    path = os.path.join(args.out, "deepinv-peer.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, path)
    summary = {"out": path, "tasks": {}}
    for name, t in result["tasks"].items():
        summary["tasks"][name] = dict(
            label=t["label"], cases=t["cases"],
            operator_rel_l2_diff=t["operator_check"]["rel_l2_diff"],
            rows=[{k: r[k] for k in ("method", "operator", "samples", "nfe_per_case",
                                     "mean_psnr_db", "mean_ssim", "mean_seconds", "per_case")}
                  for r in t["rows"]])
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
