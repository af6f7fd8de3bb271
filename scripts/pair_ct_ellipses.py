#!/usr/bin/env python3
"""Pairs a score run on the 50 held-out ellipse phantoms (a reconstruct metrics.csv, e.g. from
scripts/gpu_test_ellipses) with the CPU's FBP and TV of the same measurements
(docs/results/tv-retuned-ct-ellipses-50-phantoms-n1000-k4.txt): checks that FBP per case is the
same (same measurements), prints score − FBP and score − TV (mean, worst, cases ahead).

    .venv/bin/python scripts/pair_ct_ellipses.py /work/.device/N/test.csv
"""
import csv
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TV = ROOT / "docs/results/tv-retuned-ct-ellipses-50-phantoms-n1000-k4.txt"


def main(path):
    base = {}
    for line in TV.open():
        p = line.split()
        if p and p[0].startswith("ellipses_"):
            base[p[0]] = (float(p[1]), float(p[3]))  # fbp, tv (the retuned column)
    rows = [r for r in csv.DictReader(open(path)) if r["case"].startswith("ellipses_")]
    fbp = {r["case"]: float(r["psnr_db"]) for r in rows if r["method"] == "fbp"}
    score = {r["case"]: float(r["psnr_db"]) for r in rows if r["method"] == "score"}
    if set(score) != set(base):
        sys.exit(f"{path}: expected the 50 phantoms 1000-1049, got {len(score)} score rows")
    off = [c for c in fbp if abs(fbp[c] - base[c][0]) > 0.006]
    if off:
        sys.exit(f"FBP differs from the CPU run on {off[:5]}: not the same measurements")
    cases = sorted(base)
    s = np.array([score[c] for c in cases])
    f = np.array([base[c][0] for c in cases])
    t = np.array([base[c][1] for c in cases])
    print(f"fbp {f.mean():.2f}  tv {t.mean():.2f}  score {s.mean():.2f} ± {s.std(ddof=1):.2f}")
    print(f"score - fbp {np.mean(s - f):+.2f} (worst {np.min(s - f):+.2f})")
    print(f"score - tv  {np.mean(s - t):+.2f} (worst {np.min(s - t):+.2f}, "
          f"ahead on {int((s > t).sum())} of {len(cases)})")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
