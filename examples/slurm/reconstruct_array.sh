#!/usr/bin/env bash
# Sparse-view CT study split over a Slurm job array: task K of N reconstructs every batch j of
# BATCH slices with j mod N == K (`--shard K/N --batch BATCH`, cases seeded by their index; the
# slices of a batch share one batched sampler run on the GPU), then the last step merges the parts
# into one folder and one metrics table, equal to the unsharded run (tested by
# tests/cli_reconstruct_tasks.rs::sharded_ct_study_merges_to_the_unsharded_one). With a volume as
# CASES (e.g. CASES=scan.nii.gz) the merge also writes one {stem}_{method}.nii.gz per method
# (tests/cli_reconstruct_tasks.rs::sharded_nifti_volume_merges_into_one_volume; batched shards:
# tests/inverse_ct_cli.rs::batched_reconstruction_matches_and_shards_by_batch).
#
#   sbatch --array=0-3 examples/slurm/reconstruct_array.sh        # 4 parts, one GPU each
#   sbatch --dependency=afterok:<array job id> --export=ALL,MERGE=1 examples/slurm/reconstruct_array.sh
#
# Locally (no Slurm), the same commands: N=4; for K in 0 1 2 3; do SLURM_ARRAY_TASK_ID=$K \
#   SLURM_ARRAY_TASK_COUNT=$N examples/slurm/reconstruct_array.sh; done; MERGE=1 examples/slurm/reconstruct_array.sh
#SBATCH --job-name=scoreinv-ct
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=02:00:00
#SBATCH --output=logs/%x-%A_%a.out
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/../..}"
bin=${SCOREINV:-target/release/scoreinv}
out=${OUT:-out/slurm-ct}
n=${SLURM_ARRAY_TASK_COUNT:-4}
cases=${CASES:-invesalius:z=64..80}
model=${MODEL:-data/models/ct-head}
batch=${BATCH:-4}
if [[ "${MERGE:-0}" == 1 ]]; then
  parts=()
  for ((k = 0; k < n; k++)); do parts+=("$out/part-$k"); done
  "$bin" merge "${parts[@]}" --out "$out/all"
  exit 0
fi
k=${SLURM_ARRAY_TASK_ID:?set SLURM_ARRAY_TASK_ID (or submit with sbatch --array)}
"$bin" --device auto reconstruct ct --ground-truth "$cases" --size 64 --views 23 --angles 180 \
  --noise gaussian:0.005 --seed 0 --method fbp,tv,score --model "$model" --samples 4 \
  --batch "$batch" --shard "$k/$n" --out "$out/part-$k"
