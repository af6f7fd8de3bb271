# Helpers shared by the evaluation scripts (sourced; not run on its own).

# Whether stage $1 is among "$stages" (each script's STAGES).
has() { [[ " $stages " == *" $1 "* ]]; }

# METHOD < `reconstruct`'s printed table → "psnr ssim" of its mean row.
mean_of() {
  awk -v m="$1" '$1 == m && NF >= 6 && $2 ~ /^[0-9]+$/ {print $3, $6}'
}

# FILE KEY → the lambda (column 2) with the best mean PSNR (column 3) among the rows of FILE whose
# first column is KEY (a TV tuning table: "KEY lambda psnr ssim").
best_tv() {
  awk -v k="$2" '$1 == k {if ($3 > best) {best = $3; l = $2}} END {print l}' "$1"
}

# FILE → the setting (column 1) with the best mean PSNR (column 2) among FILE's rows that are not
# comments (a validation table: "setting psnr ssim").
best_of() {
  awk '!/^#/ {if ($2 > best) {best = $2; t = $1}} END {print t}' "$1"
}

# T0 → the step count N that leaves "$nfe" network evaluations below t0 (`cold`: N = NFE).
steps_for() {
  [ "$1" = cold ] && { echo "$nfe"; return; }
  python3 -c "import sys; print(round($nfe / float(sys.argv[1])))" "$1"
}
