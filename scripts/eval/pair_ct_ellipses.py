#!/usr/bin/env python3
"""Pairs a score run on the 50 held-out ellipse phantoms (reconstruct metrics.csv files, e.g. from
scripts/gpu/test_ellipses, or the parts of a --shard run) with the CPU's FBP and TV of the same
measurements (docs/results/tv-retuned-ct-ellipses-50-phantoms-n1000-k4.txt): checks that FBP per
case is the same (same measurements), prints score − FBP and score − TV (mean ± standard error,
worst, cases ahead).

    .venv/bin/python scripts/eval/pair_ct_ellipses.py GPU_OUT/test.csv
    .venv/bin/python scripts/eval/pair_ct_ellipses.py --partial PART/metrics.csv
        PART2/metrics.csv ...
    ... --write per-case.csv      (also writes the pairs, one row per case)

A file written by --write may be given again as an input (its header has score_psnr_db): its
rows count as pairs already checked, so a run split into parts whose outputs were not all
kept can be completed from its per-case file plus the new parts' metrics.csv.

With --partial the files may cover only some of the 50 phantoms: the figures are then for those
cases only, printed beside the N = 1000, K = 16 run (test_chosen_k16 of
docs/results/ct-ellipses-12000-steps-test-50-phantoms-h200.csv) on the same cases.
"""
import csv
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TV = ROOT / "docs/results/tv-retuned-ct-ellipses-50-phantoms-n1000-k4.txt"
N1000 = ROOT / "docs/results/ct-ellipses-12000-steps-test-50-phantoms-h200.csv"


def summary(name, s, f, t):
    se = lambda d: np.std(d, ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
    print(f"{name}: score {s.mean():.2f} ± {s.std(ddof=1) if len(s) > 1 else 0:.2f}  "
          f"score - fbp {np.mean(s - f):+.2f} (worst {np.min(s - f):+.2f})  "
          f"score - tv {np.mean(s - t):+.2f} ± {se(s - t):.2f} (worst {np.min(s - t):+.2f}, "
          f"ahead on {int((s > t).sum())} of {len(s)})")


def main(paths, partial, write=None):
    base = {}
    for line in TV.open():
        p = line.split()
        if p and p[0].startswith("ellipses_"):
            base[p[0]] = (float(p[1]), float(p[3]))  # fbp, tv (the retuned column)
    fbp, score, ssim = {}, {}, {}
    for path in paths:
        rows = csv.DictReader(open(path))
        if "score_psnr_db" in (rows.fieldnames or []):  # an earlier --write: pairs already checked
            for r in rows:
                if r["case"] in score:
                    sys.exit(f"{path}: {r['case']} score appears twice among the files")
                fbp[r["case"]] = float(r["fbp_psnr_db"])
                score[r["case"]] = float(r["score_psnr_db"])
                if r.get("score_ssim"):
                    ssim[r["case"]] = float(r["score_ssim"])
            continue
        for r in rows:
            if not r["case"].startswith("ellipses_"):
                continue
            d = fbp if r["method"] == "fbp" else score if r["method"] == "score" else None
            if d is None:
                continue
            if r["case"] in d:
                sys.exit(f"{path}: {r['case']} {r['method']} appears twice among the files")
            d[r["case"]] = float(r["psnr_db"])
            if d is score and r.get("ssim"):
                ssim[r["case"]] = float(r["ssim"])
    if not score or not set(score) <= set(base):
        sys.exit(f"expected score rows for phantoms 1000-1049, got {sorted(score)[:5]}")
    if not partial and set(score) != set(base):
        sys.exit(f"expected the 50 phantoms 1000-1049, got {len(score)} score rows (--partial?)")
    missing = [c for c in score if c not in fbp]
    if missing:
        sys.exit(f"no fbp row for {missing[:5]}: "
                 "run with --method fbp,score to check the measurements")
    off = [c for c in score if abs(fbp[c] - base[c][0]) > 0.006]
    if off:
        sys.exit(f"FBP differs from the CPU run on {off[:5]}: not the same measurements")
    cases = sorted(score)
    s = np.array([score[c] for c in cases])
    f = np.array([base[c][0] for c in cases])
    t = np.array([base[c][1] for c in cases])
    print(f"{len(cases)} of 50 phantoms: fbp {f.mean():.2f}  tv {t.mean():.2f}")
    summary("this run", s, f, t)
    known = [ssim[c] for c in cases if c in ssim]
    if known:
        print(f"score SSIM {np.mean(known):.4f} (mean over the {len(known)} cases with SSIM kept)")
    if not (partial or write):
        return
    k16 = {r["case"]: float(r["psnr_db"]) for r in csv.DictReader(open(N1000))
           if r["run"] == "test_chosen_k16" and r["method"] == "score"}
    if partial:
        summary("N = 1000, K = 16 on the same cases", np.array([k16[c] for c in cases]), f, t)
    if write:
        with open(write, "w", newline="") as out:
            w = csv.writer(out)
            w.writerow(["case", "fbp_psnr_db", "tv_psnr_db", "score_psnr_db",
                        "score_minus_tv_db", "score_n1000_k16_psnr_db", "score_ssim"])
            for c, sc, fb, tv in zip(cases, s, f, t):
                w.writerow([c, f"{fb:.2f}", f"{tv:.2f}", f"{sc:.2f}", f"{sc - tv:+.2f}",
                            f"{k16[c]:.2f}", f"{ssim[c]:.4f}" if c in ssim else ""])


if __name__ == "__main__":
    args = sys.argv[1:]
    partial = "--partial" in args
    args = [a for a in args if a != "--partial"]
    write = None
    if "--write" in args:
        i = args.index("--write")
        if i + 1 >= len(args):
            sys.exit("--write needs a file name")
        write = args[i + 1]
        del args[i:i + 2]
    if not args:
        sys.exit(__doc__)
    main(args, partial, write)
