#!/usr/bin/env python3
"""Generate the NCSN++ family parity fixtures (tests/fixtures/score_sde_family/).

Not part of `make fixtures`: it needs the upstream source, which is not vendored here. Run it
against a scratch copy of yang-song/score_sde_pytorch (commit cb1f359) extracted OUTSIDE this
repository, prepared like this:

* op/__init__.py: only `from .upfirdn2d import upfirdn2d`; in op/upfirdn2d.py the
  `upfirdn2d_op = load(...)` CUDA build replaced by `upfirdn2d_op = None` (on CPU upstream
  already uses its pure-PyTorch `upfirdn2d_native`);
* models/layerspp.py Upsample: `F.interpolate(x, (H*2, W*2), 'nearest')` -> `mode='nearest'`
  (the third positional argument is scale_factor, so the original call raises);
* models/up_or_down_sampling.py upsample_conv_2d: `w[..., ::-1, ::-1]` -> `torch.flip(w, (3, 4))`
  (PyTorch rejects negative slice steps), and the `F.conv_transpose2d` call given
  `stride=(factor, factor), output_padding=0` (upstream passes the TF-style 4-element stride
  `[1, 1, factor, factor]`, which PyTorch rejects, and an output_padding computed from it; the
  intended output size `(H-1)*factor + k` needs output_padding 0). These two only matter for
  FIR upsampling with a convolution (progressive='residual' or resblock_type='ddpm' with fir).

Usage: python scripts/gen_score_sde_family.py /path/to/score_sde_scratch OUTDIR

Each fixture NAME.json + NAME.safetensors follows the shared fixture format
(shared/fixtures/score_sde_parity/README.md): the state_dict under its PyTorch names plus
input.x, input.time_cond, output.score; json.config is the full score_sde config.
"""
import copy
import json
import sys

import torch
from safetensors.torch import save_file

UPSTREAM, OUT = sys.argv[1], sys.argv[2]
sys.path.insert(0, UPSTREAM)
from models import ncsnpp  # noqa: E402  (upstream NCSNpp, imported from the scratch copy)


class Cfg:
    """Attribute access over nested dicts (stands in for ml_collections.ConfigDict)."""

    def __init__(self, d):
        for k, v in d.items():
            setattr(self, k, Cfg(v) if isinstance(v, dict) else v)


BASE = {
    "data": {"image_size": 16, "num_channels": 3, "centered": False},
    "model": {
        "name": "ncsnpp", "nf": 8, "ch_mult": [1, 2, 2], "num_res_blocks": 1,
        "attn_resolutions": [8], "dropout": 0.0, "resamp_with_conv": True,
        "conditional": True, "fir": True, "fir_kernel": [1, 3, 3, 1], "skip_rescale": True,
        "resblock_type": "biggan", "progressive": "none", "progressive_input": "none",
        "progressive_combine": "sum", "attention_type": "ddpm", "init_scale": 0.0,
        "fourier_scale": 16, "embedding_type": "fourier", "scale_by_sigma": True,
        "conv_size": 3, "nonlinearity": "swish", "normalization": "GroupNorm",
        "sigma_min": 0.01, "sigma_max": 50, "num_scales": 1000, "beta_min": 0.1,
        "beta_max": 20.0, "ema_rate": 0.999,
    },
    "training": {"sde": "vesde", "continuous": True},
}

SIGMAS = [0.01, 0.5, 5.0, 50.0]
VP_T = [0.001, 0.2718, 0.6, 1.0]

FAMILY = {
    # biggan + FIR, residual output and input pyramids (cifar10_ncsnpp_deep-like).
    "biggan_fir_residual_residual": dict(
        model=dict(progressive="residual", progressive_input="residual"), cond="sigma"),
    # DDPM blocks, positional embedding, no pyramids, plain residual sums, centered data, VP.
    "ddpm_positional_noskip": dict(
        data=dict(centered=True, num_channels=1),
        model=dict(resblock_type="ddpm", fir=False, embedding_type="positional",
                   skip_rescale=False, scale_by_sigma=False),
        training=dict(sde="vpsde"), cond="vp"),
    # biggan without FIR (naive up/down), output_skip with nearest pyramid, input_skip (avg pool).
    "biggan_nofir_outputskip_inputskip": dict(
        model=dict(fir=False, progressive="output_skip", progressive_input="input_skip"),
        cond="sigma"),
    # two levels, two blocks per level, attention at both resolutions, input_skip with cat.
    "ch12_nrb2_attn2_cat": dict(
        model=dict(nf=8, ch_mult=[1, 2], num_res_blocks=2, attn_resolutions=[16, 8],
                   progressive="output_skip", progressive_input="input_skip",
                   progressive_combine="cat"), cond="sigma"),
    # discrete NCSN++ (cifar10_ncsnpp.py-like): positional embedding of integer labels, output
    # divided by sigmas[label].
    "positional_scale_by_sigma": dict(
        model=dict(embedding_type="positional", scale_by_sigma=True, progressive="output_skip",
                   progressive_input="input_skip"),
        training=dict(continuous=False), cond="labels"),
    # DDPM blocks with FIR resampling convs (Conv2d_0), unconditional, elu, [1,2,1] kernel,
    # residual input pyramid, non-zero init_scale.
    "ddpm_fir_unconditional_elu": dict(
        model=dict(resblock_type="ddpm", fir=True, fir_kernel=[1, 2, 1], conditional=False,
                   nonlinearity="elu", progressive_input="residual", init_scale=0.1,
                   dropout=0.1), cond="sigma"),
    # DDPM blocks without resampling convs (avg pool / nearest), lrelu, 2 channels, nf 12, 2 levels.
    "ddpm_noconv_lrelu": dict(
        data=dict(num_channels=2),
        model=dict(resblock_type="ddpm", fir=False, resamp_with_conv=False, nf=12, ch_mult=[1, 1],
                   nonlinearity="lrelu", embedding_type="positional", scale_by_sigma=False),
        training=dict(sde="vpsde"), cond="vp"),
    # relu, FIR biggan with residual output pyramid and no skip_rescale, output_skip off.
    "biggan_fir_relu_noskip": dict(
        model=dict(nonlinearity="relu", skip_rescale=False, progressive="residual",
                   progressive_input="input_skip", progressive_combine="cat"), cond="sigma"),
}


def merged(spec):
    cfg = copy.deepcopy(BASE)
    for part in ("data", "model", "training"):
        cfg[part].update(spec.get(part, {}))
    return cfg


def main():
    import os
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for i, (name, spec) in enumerate(FAMILY.items()):
        seed = 100 + i
        cfg_d = merged(spec)
        torch.manual_seed(seed)
        model = ncsnpp.NCSNpp(Cfg(cfg_d)).eval()
        sd = model.state_dict()
        g = torch.Generator().manual_seed(seed + 1000)
        with torch.no_grad():
            for k, v in sd.items():
                if k != "sigmas":
                    v += 0.05 * torch.randn(v.shape, generator=g)
        c = cfg_d["data"]["num_channels"]
        s = cfg_d["data"]["image_size"]
        gi = torch.Generator().manual_seed(seed + 2000)
        if spec["cond"] == "sigma":
            cond = torch.tensor(SIGMAS, dtype=torch.float32)
            u = torch.rand(4, c, s, s, generator=gi)
            x = u + cond[:, None, None, None] * torch.randn(4, c, s, s, generator=gi)
            meaning = "time_cond = sigma (VE noise level)"
        elif spec["cond"] == "vp":
            t = torch.tensor(VP_T, dtype=torch.float32)
            cond = t * 999
            u = 2 * torch.rand(4, c, s, s, generator=gi) - 1
            lm = -0.25 * t ** 2 * (20.0 - 0.1) - 0.5 * t * 0.1
            mean, std = torch.exp(lm), torch.sqrt(1 - torch.exp(2 * lm))
            x = mean[:, None, None, None] * u + std[:, None, None, None] * torch.randn(
                4, c, s, s, generator=gi)
            meaning = "time_cond = 999 t (VP label, float)"
        else:
            cond = torch.tensor([0.0, 10.0, 500.0, 999.0])
            sig = model.sigmas[cond.long()].float()
            u = torch.rand(4, c, s, s, generator=gi)
            x = u + sig[:, None, None, None] * torch.randn(4, c, s, s, generator=gi)
            meaning = "time_cond = integer label i (as float); sigma = sigmas[i]"
        with torch.no_grad():
            out = model(x, cond).float()
        tensors = {k: v.detach().float().contiguous() for k, v in sd.items()}
        tensors["input.x"] = x.contiguous()
        tensors["input.time_cond"] = cond.contiguous()
        tensors["output.score"] = out.contiguous()
        save_file(tensors, f"{OUT}/{name}.safetensors")
        per = out.reshape(4, -1).abs().amax(1).tolist()
        meta = {
            "fixture": name,
            "fixture_set": "family",
            "source": {
                "repository": "yang-song/score_sde_pytorch",
                "commit": "cb1f359f4aadf0ff9a5e122fe8fffc9451fd6e44",
                "module": "models/ncsnpp.py NCSNpp",
                "patches": [
                    "op/: CUDA extension build disabled (CPU path upfirdn2d_native)",
                    "layerspp.Upsample (fir=False): F.interpolate(..., mode='nearest')",
                    "up_or_down_sampling.upsample_conv_2d: torch.flip(w, (3, 4)) for w[..., ::-1, ::-1]",
                    "up_or_down_sampling.upsample_conv_2d: conv_transpose2d(stride=(factor, factor), output_padding=0)",
                ],
            },
            "generator": "scripts/gen_score_sde_family.py",
            "torch_version": torch.__version__,
            "dtype": "float32", "device": "cpu",
            "deterministic": {"use_deterministic_algorithms": True, "num_threads": 1},
            "seed": {"model_init_torch_manual_seed": seed,
                     "perturbation_generator_seed": seed + 1000,
                     "input_generator_seed": seed + 2000},
            "perturbation": "every state_dict entry except sigmas += 0.05 * randn",
            "eval_mode": True,
            "config": cfg_d,
            "time_cond": {"meaning": meaning, "values": cond.tolist()},
            "output": {"meaning": "raw NCSNpp.forward output (eval mode)",
                       "per_sample_max_abs": per},
            "tolerance": {
                "rule": "for every batch element b: max |port_b - output.score_b| <= 1e-4 * max|output.score_b|",
                "per_sample_max_abs": per,
            },
            "tensors": {k: list(v.shape) for k, v in tensors.items()},
        }
        with open(f"{OUT}/{name}.json", "w") as f:
            json.dump(meta, f)
        print(name, len(sd), "tensors", sum(v.numel() for v in sd.values()), "scalars",
              "out max", max(per))


main()
