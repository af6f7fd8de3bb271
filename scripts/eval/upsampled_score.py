"""Scores a coarse reconstruction against the native-resolution truth.

Usage: upsampled_score.py COARSE_DIR NATIVE_DIR METHOD

COARSE_DIR is a `scoreinv reconstruct` folder at a coarse `--size` (e.g. 64), NATIVE_DIR one
of the same cases at native size (it holds `<case>_truth.npy`). Each `<case>_<METHOD>.npy` of
COARSE_DIR is upsampled to the truth's size (bicubic, scikit-image `resize(order=3)`, clipped to
the window) and scored with scikit-image's PSNR and SSIM (data range 1, defaults), on the
window scale [0, 1] (outputs in HU are mapped back through the study's HU window, as scoreinv
scores them). Prints a table and writes `<NATIVE_DIR>-<coarse size>-prior-upsampled.json`.
"""
import json
import pathlib
import sys

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import resize


def window_scale(settings):
    units = settings.get("output_units")
    if units and units.get("values") == "HU":
        lo, hi = units["window_hu"]
        return lambda a: (a - lo) / (hi - lo)
    return lambda a: a


def main():
    coarse, native, method = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
    c_settings = json.loads((coarse / "metrics.json").read_text())["settings"]
    n_settings = json.loads((native / "metrics.json").read_text())["settings"]
    to_c, to_n = window_scale(c_settings), window_scale(n_settings)
    rows = []
    for truth_file in sorted(native.glob("*_truth.npy")):
        case = truth_file.name[: -len("_truth.npy")]
        truth = to_n(np.load(truth_file).astype(np.float64))[0]
        x = to_c(np.load(coarse / f"{case}_{method}.npy").astype(np.float64))[0]
        up = np.clip(resize(x, truth.shape, order=3, mode="reflect", anti_aliasing=False), 0, 1)
        rows.append(
            {
                "case": case,
                "coarse_size": list(x.shape),
                "native_size": list(truth.shape),
                "psnr_db": peak_signal_noise_ratio(truth, up, data_range=1.0),
                "ssim": structural_similarity(truth, up, data_range=1.0),
            }
        )
    if not rows:
        sys.exit(f"{native}: no <case>_truth.npy")
    size = rows[0]["coarse_size"][0]
    print(f"{method} at {size}x{size}, upsampled (bicubic) to native size")
    print(f"{'case':<28} {'PSNR dB':>8} {'SSIM':>7}")
    for r in rows:
        print(f"{r['case']:<28} {r['psnr_db']:8.2f} {r['ssim']:7.4f}")
    p = np.array([r["psnr_db"] for r in rows])
    s = np.array([r["ssim"] for r in rows])
    print(f"{'mean ± std':<28} {p.mean():8.2f} {s.mean():7.4f}  "
          f"(PSNR std {p.std():.2f}, n = {len(rows)})")
    out = pathlib.Path(f"{native}-{size}-prior-upsampled.json")
    out.write_text(
        json.dumps(
            {
                "method": method,
                "coarse_dir_settings": c_settings,
                "upsampling": "skimage.transform.resize(order=3, mode='reflect', "
                "anti_aliasing=False), clipped to [0, 1]",
                "metrics": "skimage peak_signal_noise_ratio / structural_similarity, "
                "data_range=1, window scale",
                "cases": rows,
                "mean_psnr_db": p.mean(),
                "mean_ssim": s.mean(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
