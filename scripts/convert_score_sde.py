#!/usr/bin/env python3
"""Convert a score_sde_pytorch NCSN++ checkpoint to a scoreinv model directory.

    convert_score_sde.py CHECKPOINT.pth CONFIG OUTDIR [--ema | --model] [--trust-pickle]

CHECKPOINT.pth: a checkpoint written by score_sde_pytorch's `utils.save_checkpoint`
    ({'model': state_dict, 'ema': {'decay', 'num_updates', 'shadow_params'}, 'optimizer': ...,
    'step': ...}); a bare state_dict is accepted with --model.
CONFIG: the run's config as JSON: either the config object itself (sub-objects model / data /
    training, i.e. `config.to_dict()`), `{"config": {...}}` (as in the parity fixtures), or a
    score_sde_pytorch config file `*.py` with `get_config()` (needs ml_collections installed).
OUTDIR: receives
    model.safetensors  every state_dict tensor under its PyTorch name (`all_modules.<i>...`,
                       no `module.` prefix), float32, contiguous; the `sigmas` buffer dropped
                       (the network recomputes it from the config);
    config.json        {"format": "score_sde", "config": {model, data, training, ...}}.

--ema (default) takes the EMA weights, as score_sde_pytorch does for sampling and evaluation
(`ema.copy_to(model.parameters())`: the shadow parameters replace, in order, the model
parameters with requires_grad, i.e. all except the Gaussian Fourier projection `W`); --model
takes the raw training weights.

Only torch is needed. Exits with status 2 and a message naming the problem for an unsupported
model (model.name other than 'ncsnpp'), a checkpoint without the requested key, or EMA
parameters that do not line up with the model's.
"""
import argparse
import json
import os
import sys

import torch


def fail(msg):
    print(f"convert_score_sde: error: {msg}", file=sys.stderr)
    sys.exit(2)


def load_config(path):
    if path.endswith(".py"):
        import importlib.util

        try:
            import ml_collections  # noqa: F401
        except ImportError:
            fail(f"{path}: reading a .py config needs ml_collections; pass the config as JSON "
                 "(config.to_dict() dumped with json) instead")
        sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
        spec = importlib.util.spec_from_file_location("score_sde_config", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        cfg = mod.get_config().to_dict()
        return json.loads(json.dumps(cfg, default=list))
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        fail(f"{path}: cannot read the config as JSON: {e}")
    if not isinstance(cfg, dict):
        fail(f"{path}: the config must be a JSON object")
    if "model" not in cfg and isinstance(cfg.get("config"), dict):
        cfg = cfg["config"]
    if not isinstance(cfg.get("model"), dict):
        fail(f"{path}: no 'model' object (expected the score_sde config with model/data/"
             "training sub-objects)")
    return cfg


def check_config(cfg, path):
    m = cfg["model"]
    name = str(m.get("name", "ncsnpp")).lower()
    if name != "ncsnpp":
        fail(f"{path}: model.name = '{m.get('name')}' is not supported; only 'ncsnpp' "
             "(NCSN++ / DDPM++) networks can be converted")
    if not isinstance(cfg.get("data"), dict):
        fail(f"{path}: no 'data' object (image_size, num_channels, centered are needed)")
    for k in ("image_size", "num_channels", "centered"):
        if k not in cfg["data"]:
            fail(f"{path}: data.{k} is missing")
    for k in ("nf", "ch_mult", "num_res_blocks", "attn_resolutions", "embedding_type",
              "resblock_type", "progressive", "progressive_input"):
        if k not in m:
            fail(f"{path}: model.{k} is missing")


def strip_prefix(sd):
    out = {}
    for k, v in sd.items():
        out[k[len("module."):] if k.startswith("module.") else k] = v
    return out


def write_safetensors(tensors, path):
    """The safetensors format (8-byte little-endian header size, JSON header, raw
    little-endian data), written with torch only. All tensors are float32."""
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        t = tensors[name]
        data = t.numpy().astype("<f4", copy=False).tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # align the data section to 8 bytes
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("config")
    ap.add_argument("outdir")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--ema", dest="which", action="store_const", const="ema",
                   help="EMA weights (default)")
    g.add_argument("--model", dest="which", action="store_const", const="model",
                   help="raw training weights")
    ap.add_argument("--trust-pickle", action="store_true",
                    help="load with weights_only=False (only for checkpoints you trust)")
    args = ap.parse_args()
    which = args.which or "ema"

    cfg = load_config(args.config)
    check_config(cfg, args.config)

    try:
        ckpt = torch.load(args.checkpoint, map_location="cpu",
                          weights_only=not args.trust_pickle)
    except FileNotFoundError:
        fail(f"{args.checkpoint}: no such file")
    except Exception as e:  # noqa: BLE001 - report any unpickling problem clearly
        fail(f"{args.checkpoint}: cannot load the checkpoint ({type(e).__name__}: {e}); "
             "if it comes from a source you trust, retry with --trust-pickle")

    if isinstance(ckpt, dict) and "model" in ckpt and isinstance(ckpt["model"], dict):
        sd = strip_prefix(ckpt["model"])
    elif isinstance(ckpt, dict) and ckpt and all(torch.is_tensor(v) for v in ckpt.values()):
        if which == "ema":
            fail(f"{args.checkpoint}: a bare state_dict has no EMA weights; use --model")
        sd = strip_prefix(ckpt)
    else:
        keys = sorted(ckpt.keys()) if isinstance(ckpt, dict) else type(ckpt).__name__
        fail(f"{args.checkpoint}: no 'model' state_dict in the checkpoint (found {keys})")

    bad = [k for k in sd if not (k == "sigmas" or k.startswith("all_modules."))]
    if bad:
        fail(f"{args.checkpoint}: not an NCSNpp state_dict; unexpected keys {bad[:5]}")

    if which == "ema":
        if "ema" not in ckpt:
            fail(f"{args.checkpoint}: no 'ema' entry in the checkpoint; use --model for the raw "
                 "weights")
        shadow = ckpt["ema"].get("shadow_params") if isinstance(ckpt["ema"], dict) else None
        if shadow is None:
            fail(f"{args.checkpoint}: 'ema' has no 'shadow_params'")
        # ema.copy_to(model.parameters()): parameters in registration order (= state_dict
        # order without buffers), only those with requires_grad (GaussianFourierProjection.W
        # has requires_grad=False).
        fourier = str(cfg["model"].get("embedding_type", "fourier")).lower() == "fourier"
        trainable = [k for k in sd if k != "sigmas"
                     and not (fourier and k == "all_modules.0.W")]
        if len(trainable) != len(shadow):
            fail(f"{args.checkpoint}: {len(shadow)} EMA shadow parameters but the model has "
                 f"{len(trainable)} trainable parameters; config and checkpoint do not match")
        for k, s in zip(trainable, shadow):
            if tuple(s.shape) != tuple(sd[k].shape):
                fail(f"{args.checkpoint}: EMA parameter for '{k}' has shape {tuple(s.shape)}, "
                     f"the model's is {tuple(sd[k].shape)}")
            sd[k] = s

    tensors = {k: v.detach().to(torch.float32).contiguous().clone()
               for k, v in sd.items() if k != "sigmas"}
    os.makedirs(args.outdir, exist_ok=True)
    write_safetensors(tensors, os.path.join(args.outdir, "model.safetensors"))
    with open(os.path.join(args.outdir, "config.json"), "w") as f:
        json.dump({"format": "score_sde", "config": cfg}, f, indent=1)
    print(f"wrote {len(tensors)} tensors ({which} weights) to "
          f"{os.path.join(args.outdir, 'model.safetensors')}")


if __name__ == "__main__":
    main()
