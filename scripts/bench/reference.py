"""Reference timings for `scoreinv bench`, measured in the same run as the Rust figures.

Subcommands (each prints ONE JSON object on the last stdout line; times are seconds, the
median of `--repeats` timed runs after `--warmup` untimed ones):

  radon    scikit-image `radon` / unfiltered `iradon` (adjoint) / ramp `iradon` (FBP),
           called per image in a Python loop, as users do.       keys: forward, adjoint, fbp
  radon_torch  the usual PyTorch-on-GPU Radon transform: rotate the batch by every angle with
           `affine_grid` + `grid_sample` (bilinear, zeros outside) and sum along the ray axis,
           in angle chunks; forward+adjoint adds the autograd vector-Jacobian product (the
           exact transpose of that forward); FBP = ramp filter by rfft, then back-projection by
           `grid_sample` on the filtered sinogram (as deepinv's `IRadon`).
                                                         keys: forward, forward_adjoint, fbp
  mri      NumPy centred orthonormal fft2 (ifftshift → fft2 → fftshift, norm="ortho") times
           a Cartesian mask, per batch.                           keys: forward
  network  PyTorch eager NCSN++ (scripts/bench/ncsnpp_torch.py) with the weights scoreinv
           wrote; checks parity on the input/output stored in --check first.
                                                                  keys: max_rel_err, forward,
                                                                  forward_backward
  sampler  one VE predictor-corrector step (reverse diffusion + Langevin, snr 0.16) of the
           same network.                                          keys: step
  train    one DSM training step (VE, Adam, grad clip 1, EMA) of the same network.
                                                                  keys: step
  fanbeam_astra  ASTRA Toolbox's CPU fan-beam projector `line_fanflat` (flat detector) on the
           images and sinograms scoreinv wrote, one image at a time in a Python loop through
           `astra.create_sino` / `astra.create_backprojection` (ASTRA's 2-D API takes one image
           per call, its CPU projectors run on one thread). Needs astra-toolbox, which the
           project's .venv does not have: run it with the interpreter of a separate environment
           (`python3 -m venv .venv-astra && .venv-astra/bin/pip install astra-toolbox==2.5.0
           numpy`). Writes ASTRA's projections and back-projections in scoreinv's layout and
           conventions (see `astra_fan`).                         keys: setup (create_projector),
                                                                  forward, adjoint, astra_version
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


SYNC = [lambda: None]  # torch.cuda.synchronize when the network runs on CUDA


def timeit(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    SYNC[0]()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        SYNC[0]()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cmd_radon(a):
    from skimage.transform import iradon, radon

    rng = np.random.default_rng(0)
    n = a.size
    yy, xx = np.mgrid[:n, :n]
    inside = (yy - (n - 1) / 2) ** 2 + (xx - (n - 1) / 2) ** 2 <= (n / 2 - 1) ** 2
    imgs = [rng.random((n, n)) * inside for _ in range(a.batch)]
    theta = np.linspace(0.0, 180.0, a.angles, endpoint=False)
    sinos = [radon(im, theta=theta, circle=True) for im in imgs]
    out = {
        "forward": timeit(lambda: [radon(im, theta=theta, circle=True) for im in imgs],
                          a.warmup, a.repeats),
        "adjoint": timeit(lambda: [iradon(s, theta=theta, filter_name=None, circle=True)
                                   for s in sinos], a.warmup, a.repeats),
        "fbp": timeit(lambda: [iradon(s, theta=theta, filter_name="ramp", circle=True)
                               for s in sinos], a.warmup, a.repeats),
    }
    return out


def cmd_radon_torch(a):
    import torch
    import torch.nn.functional as F

    dev = torch.device(a.device)
    if dev.type == "cuda":
        SYNC[0] = torch.cuda.synchronize
    n, na, b = a.size, a.angles, a.batch
    th = torch.deg2rad(torch.arange(na, dtype=torch.float64) * (180.0 / na))
    c, s = torch.cos(th), torch.sin(th)
    z = torch.zeros_like(c)
    mats = torch.stack([torch.stack([c, -s, z], 1), torch.stack([s, c, z], 1)], 1).float()
    grid = F.affine_grid(mats, (na, 1, n, n), align_corners=False).to(dev)  # [A, n, n, 2]
    chunk = max(1, min(na, (1 << 27) // (b * n * n)))
    x = torch.rand(b, 1, n, n, device=dev)
    v = torch.rand(b, n, na, device=dev)

    def fwd(img):
        parts = []
        for a0 in range(0, na, chunk):
            g = grid[a0:a0 + chunk]
            k = g.shape[0]
            g = g.reshape(1, k * n, n, 2).expand(b, k * n, n, 2)
            r = F.grid_sample(img, g, mode="bilinear", padding_mode="zeros",
                              align_corners=False)  # [b, 1, k·n, n]
            parts.append(r.reshape(b, k, n, n).sum(2))  # [b, k, n_det]
        return torch.cat(parts, 1).transpose(1, 2)  # [b, n_det, A]

    def fwd_adj():
        xg = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad((fwd(xg) * v).sum(), xg)
        return g

    # FBP: |ω| filter on the zero-padded projections, then for every angle sample the filtered
    # projection at each pixel's detector coordinate t = x cos θ + y sin θ (linear
    # interpolation: grid_sample on the [A, P] "image" with the row fixed to the angle).
    p = max(64, 1 << math.ceil(math.log2(2 * n)))
    ramp = torch.abs(torch.fft.rfftfreq(p, device=dev)) * 2.0
    lin = (torch.arange(n, device=dev, dtype=torch.float32) - n // 2)
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    t_pix = (xx[None] * c.float().to(dev)[:, None, None]
             - yy[None] * s.float().to(dev)[:, None, None])
    gx = ((t_pix + n // 2) * 2 + 1) / p - 1  # detector coordinate in [-1, 1] over P bins
    gy = (torch.arange(na, device=dev, dtype=torch.float32) * 2 + 1) / na - 1
    bp_grid = torch.stack([gx, gy[:, None, None].expand_as(gx)], -1).reshape(1, na, n * n, 2)
    chunk_bp = max(1, min(na, (1 << 27) // (b * n * n)))

    def fbp(sino):  # [b, n_det, A]
        proj = sino.transpose(1, 2)  # [b, A, n_det]
        f = torch.fft.irfft(torch.fft.rfft(proj, n=p) * ramp, n=p)  # [b, A, P]
        img = torch.zeros(b, n * n, device=dev)
        for a0 in range(0, na, chunk_bp):
            k = min(chunk_bp, na - a0)
            g = bp_grid[:, a0:a0 + k].expand(b, k, n * n, 2).clone()
            g[..., 1] = (torch.arange(k, device=dev, dtype=torch.float32)[:, None] * 2 + 1) / k - 1
            r = F.grid_sample(f[:, None, a0:a0 + k], g, mode="bilinear", padding_mode="zeros",
                              align_corners=False)  # [b, 1, k, n²]
            img += r[:, 0].sum(1)
        return (img * (math.pi / (2 * na))).reshape(b, 1, n, n)

    with torch.no_grad():
        t_fwd = timeit(lambda: fwd(x), a.warmup, a.repeats)
        sino = fwd(x)
        t_fbp = timeit(lambda: fbp(sino), a.warmup, a.repeats)
    return {"forward": t_fwd, "forward_adjoint": timeit(fwd_adj, a.warmup, a.repeats),
            "fbp": t_fbp}


def cmd_mri(a):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((a.batch, a.size, a.size)).astype(np.float32)
    mask = np.zeros((a.size, a.size), np.float32)
    mask[:, ::4] = 1.0
    c = a.size // 2
    mask[:, c - a.size // 25: c + a.size // 25] = 1.0

    def fwd():
        k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), axes=(-2, -1),
                                        norm="ortho"), axes=(-2, -1))
        return k * mask

    return {"forward": timeit(fwd, a.warmup, a.repeats)}


def astra_fan(astra, g):
    """ASTRA's volume and projection geometries for a scoreinv FanGeometryConfig `g` (a flat
    detector without offset), and the map of ASTRA sinograms into scoreinv's layout.

    Conventions (measured on single pixels, see scripts/fixtures/upstream/fanbeam_astra.py):
    scoreinv's pixel (row, col) is centred at x = (col - c)·d, y = (c - row)·d with c = N // 2;
    ASTRA centres column j at min_x + (j + ½)·d and row i at max_y - (i + ½)·d, so the window
    [-(c + ½)·d, (N - c - ½)·d] in x and [-(N - c - ½)·d, (c + ½)·d] in y puts the isocentre on
    scoreinv's pixel c (for even N a half pixel off ASTRA's default window). ASTRA's source
    angle t is scoreinv's beta = t + 180°, and ASTRA's detector bin i is scoreinv's bin
    n_det - 1 - i. `detector_pitch` (mm on the detector at `source_to_detector_mm`) is ASTRA's
    det_width; ASTRA's origin_det = source_to_detector_mm - source_to_isocenter_mm.
    """
    if g["detector"] != "flat":
        raise SystemExit(f"fanbeam_astra: detector = {g['detector']!r}: ASTRA's 2-D CPU "
                         "projectors (line_fanflat, strip_fanflat) model a flat detector only")
    if g.get("detector_offset", 0.0) != 0.0:
        raise SystemExit(f"fanbeam_astra: detector_offset = {g['detector_offset']}: only 0 is "
                         "mapped onto ASTRA's fanflat geometry")
    n, d = g["image_size"], g["pixel_spacing_mm"]
    c = n // 2
    vol = astra.create_vol_geom(n, n, -(c + 0.5) * d, (n - c - 0.5) * d,
                                -(n - c - 0.5) * d, (c + 0.5) * d)
    t = np.deg2rad(np.asarray(g["angles_deg"], dtype=np.float64) - 180.0)
    proj = astra.create_proj_geom("fanflat", g["detector_pitch"], g["n_detectors"], t,
                                  g["source_to_isocenter_mm"],
                                  g["source_to_detector_mm"] - g["source_to_isocenter_mm"])
    return vol, proj


def cmd_fanbeam_astra(a):
    import astra

    with open(a.geometry) as f:
        g = json.load(f)
    vol, proj = astra_fan(astra, g)
    t_setup = timeit(lambda: astra.projector.delete(astra.create_projector("line_fanflat", proj,
                                                                           vol)),
                     a.warmup, a.repeats)
    pid = astra.create_projector("line_fanflat", proj, vol)
    imgs = np.load(a.images).astype(np.float32)  # [B, N, N]
    sinos = np.load(a.sinograms).astype(np.float32)  # [B, n_det, A], scoreinv's layout
    n, nd, na = g["image_size"], g["n_detectors"], len(g["angles_deg"])
    if imgs.shape[1:] != (n, n) or sinos.shape[1:] != (nd, na) or len(imgs) != len(sinos):
        raise SystemExit(f"fanbeam_astra: images {imgs.shape} / sinograms {sinos.shape} do not "
                         f"match the geometry ([B, {n}, {n}] / [B, {nd}, {na}])")
    # scoreinv [n_det, A] -> ASTRA [A, n_det] with the bins reversed, and back.
    astra_sinos = [np.ascontiguousarray(s.T[:, ::-1]) for s in sinos]

    def fwd():
        out = []
        for im in imgs:
            sid, s = astra.create_sino(im, pid)
            astra.data2d.delete(sid)
            out.append(s)
        return out

    def adj():
        out = []
        for s in astra_sinos:
            vid, v = astra.create_backprojection(s, pid)
            astra.data2d.delete(vid)
            out.append(v)
        return out

    t_fwd = timeit(fwd, a.warmup, a.repeats)
    t_adj = timeit(adj, a.warmup, a.repeats)
    fwd_out = np.stack([s[:, ::-1].T for s in fwd()]).astype(np.float32)
    bp = np.stack(adj()).astype(np.float32)
    astra.projector.delete(pid)
    np.save(a.out_sinograms, np.ascontiguousarray(fwd_out))
    np.save(a.out_backprojections, np.ascontiguousarray(bp))
    return {"setup": t_setup, "forward": t_fwd, "adjoint": t_adj,
            "astra_version": astra.__version__}


def build_net(a):
    import torch
    from ncsnpp_torch import NCSNpp, load_weights

    with open(a.config) as f:
        cfg = json.load(f)
    net = NCSNpp(cfg)
    load_weights(net, a.weights)
    dev = torch.device(a.device)
    if dev.type == "cuda":
        SYNC[0] = lambda: torch.cuda.synchronize(dev)
    return torch, net.to(dev), cfg


def rel_err(out, ref):
    return float((out.double() - ref.double()).abs().max() / ref.double().abs().max())


def cmd_network(a):
    torch, net, cfg = build_net(a)
    res = {}
    if a.check:
        from safetensors.torch import load_file

        t = load_file(a.check)
        net.eval()
        with torch.no_grad():
            y = net(t["input.x"].to(a.device), t["input.cond"].to(a.device)).cpu()
        res["max_rel_err"] = rel_err(y, t["output.y"])
    size, ch = net.d["image_size"], net.d["num_channels"]
    g = torch.Generator().manual_seed(0)
    x = torch.rand(a.batch, ch, size, size, generator=g).to(a.device)
    sigma = torch.full((a.batch,), 0.5, device=a.device)
    net.eval()

    def fwd():
        with torch.no_grad():
            net(x, sigma)

    res["forward"] = timeit(fwd, a.warmup, a.repeats)
    net.train()

    def fwd_bwd():
        net.zero_grad(set_to_none=True)
        net(x, sigma).square().mean().backward()

    res["forward_backward"] = timeit(fwd_bwd, a.warmup, a.repeats)
    return res


def ve_sigma(m, t):
    return m["sigma_min"] * (m["sigma_max"] / m["sigma_min"]) ** t


def cmd_sampler(a):
    torch, net, cfg = build_net(a)
    net.eval()
    m = net.m
    size, ch = net.d["image_size"], net.d["num_channels"]
    n_steps, snr = 1000, 0.16
    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.batch, ch, size, size, generator=g).to(a.device) * m["sigma_max"]
    state = {"x": x, "i": 0}

    def step():
        # VE PC step of Song et al. 2021 (Alg. 2/4): Langevin corrector, then reverse diffusion.
        with torch.no_grad():
            i = state["i"] % (n_steps - 1)
            t = 1.0 - i * (1.0 - 1e-5) / (n_steps - 1)
            sig = torch.full((a.batch,), ve_sigma(m, t), device=a.device)
            xx = state["x"]
            s = net(xx, sig)
            z = torch.randn_like(xx)
            gn = s.reshape(a.batch, -1).norm(dim=-1).mean()
            zn = z.reshape(a.batch, -1).norm(dim=-1).mean()
            eps = 2 * (snr * zn / gn) ** 2
            xx = xx + eps * s + torch.sqrt(2 * eps) * z
            t_next = t - (1.0 - 1e-5) / (n_steps - 1)
            s2 = ve_sigma(m, t_next)
            g2 = sig[0] ** 2 - s2 ** 2
            s = net(xx, sig)
            xx = xx + g2 * s + torch.sqrt(g2) * torch.randn_like(xx)
            state["x"], state["i"] = xx, i + 1

    return {"step": timeit(step, a.warmup, a.repeats)}


def cmd_train(a):
    torch, net, cfg = build_net(a)
    net.train()
    m = net.m
    size, ch = net.d["image_size"], net.d["num_channels"]
    g = torch.Generator().manual_seed(0)
    data = torch.rand(4 * a.batch, ch, size, size, generator=g).to(a.device)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=2e-4, betas=(0.9, 0.999), eps=1e-8)
    ema = [p.detach().clone() for p in net.parameters()]
    state = {"i": 0}

    def step():
        i = state["i"]
        idx = (torch.arange(i * a.batch, (i + 1) * a.batch) % data.shape[0]).to(a.device)
        x0 = data[idx]
        t = torch.rand(a.batch, device=a.device) * (1 - 1e-5) + 1e-5
        sigma = m["sigma_min"] * (m["sigma_max"] / m["sigma_min"]) ** t
        z = torch.randn_like(x0)
        score = net(x0 + sigma[:, None, None, None] * z, sigma)
        # DSM with λ(σ) = σ²: ‖σ s + z‖², summed per sample, averaged over the batch.
        loss = (score * sigma[:, None, None, None] + z).square().reshape(a.batch, -1).sum(1)
        loss = loss.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, net.parameters()):
                e.mul_(0.999).add_(p.detach(), alpha=1 - 0.999)
        state["i"] = i + 1

    return {"step": timeit(step, a.warmup, a.repeats)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("radon", "radon_torch", "mri", "network", "sampler", "train", "fanbeam_astra"):
        s = sub.add_parser(name)
        s.add_argument("--batch", type=int, required=True)
        s.add_argument("--warmup", type=int, default=1)
        s.add_argument("--repeats", type=int, default=3)
        s.add_argument("--threads", type=int, default=None)
        if name in ("radon", "radon_torch", "mri"):
            s.add_argument("--size", type=int, required=True)
        if name in ("radon", "radon_torch"):
            s.add_argument("--angles", type=int, required=True)
        if name == "radon_torch":
            s.add_argument("--device", default="cpu", help="torch device: cpu, cuda:0, ...")
        if name in ("network", "sampler", "train"):
            s.add_argument("--config", required=True, help="ScoreSdeConfig JSON")
            s.add_argument("--weights", required=True, help="safetensors written by scoreinv")
            s.add_argument("--device", default="cpu", help="torch device: cpu, cuda:0, ...")
        if name == "fanbeam_astra":
            s.add_argument("--geometry", required=True,
                           help="scoreinv FanGeometryConfig as JSON (flat detector)")
            s.add_argument("--images", required=True, help="NPY [B, N, N] float32")
            s.add_argument("--sinograms", required=True,
                           help="NPY [B, n_detectors, n_angles] float32 to back-project")
            s.add_argument("--out-sinograms", required=True,
                           help="NPY written: ASTRA's projections of --images, scoreinv layout")
            s.add_argument("--out-backprojections", required=True,
                           help="NPY written: ASTRA's back-projections of --sinograms")
        if name == "network":
            s.add_argument("--check", default=None,
                           help="safetensors with input.x, input.cond, output.y for parity")
    a = p.parse_args(argv)
    if a.batch < 1 or a.repeats < 1 or a.warmup < 0:
        p.error("--batch and --repeats must be >= 1, --warmup >= 0")
    try:
        import torch

        if a.threads:
            torch.set_num_threads(a.threads)
        threads = torch.get_num_threads()
    except ImportError:  # the ASTRA environment has no torch
        threads = None
    res = {"radon": cmd_radon, "radon_torch": cmd_radon_torch, "mri": cmd_mri,
           "network": cmd_network,
           "sampler": cmd_sampler, "train": cmd_train, "fanbeam_astra": cmd_fanbeam_astra}[a.cmd](a)
    res["torch_threads"] = threads
    for k, v in res.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise SystemExit(f"reference {a.cmd}: {k} is not finite ({v})")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
