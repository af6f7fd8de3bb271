//! Sparse CSR matrices built on the host in f64 and applied as libtorch sparse tensors, for the
//! sparse backends of the ray-driven projectors ([`crate::radon`], [`crate::fanbeam`]): a
//! projection matrix is assembled from any ray geometry that gives the bilinear footprints of
//! its samples ([`ray_matrix`]), so every geometry uses the same assembly, transpose and
//! product.
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use crate::geometry::BilinearSample;
use crate::{OperatorError, Result};

/// The projection matrix of a ray geometry: rows `k·A + a` (detector bin `k` of `n_det`, angle
/// `a` of `n_angles`, so that `R x` reshapes to the `[n_det, A]` sinogram directly), columns
/// `r·N + c`. `samples(a, k, f)` calls `f(footprint, weights)` for every sample of the ray
/// `(a, k)`, the weights already including the sample's quadrature weight; row entries are
/// `Σ w` over the samples whose bilinear corners include pixel `(r, c)`, duplicates summed in
/// f64, exact zeros dropped.
pub(crate) fn ray_matrix<F>(n: usize, n_det: usize, n_angles: usize, samples: F) -> Result<Csr>
where
    F: Fn(usize, usize, &mut dyn FnMut(&BilinearSample, [f64; 4])) + Sync,
{
    check_indexable(n * n, "the projection matrix")?;
    let rows: Vec<Vec<(u32, f64)>> = (0..n_det * n_angles)
        .into_par_iter()
        .map(|row| {
            let (k, a) = (row / n_angles, row % n_angles);
            let mut e = Vec::with_capacity(4 * n);
            samples(a, k, &mut |b, w| {
                for (q, p) in b.corners_in_grid(n) {
                    if w[q] != 0.0 {
                        e.push((p as u32, w[q]));
                    }
                }
            });
            merge_sorted(e)
        })
        .collect();
    Ok(Csr::from_rows(rows, n * n))
}

/// `M vᵀ` for each row `v` of `x` `[m, cols]` with the sparse `M` `[rows, cols]`: `[m, rows]`.
/// The dense operand is made row-major `[cols, m]` first, so that every stored entry of `M`
/// reads `m` contiguous values (with a column-major operand cuSPARSE SpMM is ~4× slower).
pub(crate) fn sparse_apply(mat: &Tensor, x: &Tensor) -> Result<Tensor> {
    let xt = x.f_transpose(0, 1)?.f_contiguous()?;
    Ok(mat.f_mm(&xt)?.f_transpose(0, 1)?.f_contiguous()?)
}

/// A sparse matrix in compressed-row form, built on the host in f64.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Csr {
    pub rows: usize,
    pub cols: usize,
    /// Row `i` holds entries `crow[i]..crow[i + 1]`.
    pub crow: Vec<usize>,
    pub col: Vec<u32>,
    pub val: Vec<f64>,
}

impl Csr {
    /// Assembles rows whose entries are sorted by column with no duplicates.
    pub fn from_rows(rows: Vec<Vec<(u32, f64)>>, cols: usize) -> Self {
        let mut crow = Vec::with_capacity(rows.len() + 1);
        crow.push(0);
        let nnz: usize = rows.iter().map(Vec::len).sum();
        let (mut col, mut val) = (Vec::with_capacity(nnz), Vec::with_capacity(nnz));
        for r in &rows {
            for &(c, v) in r {
                col.push(c);
                val.push(v);
            }
            crow.push(col.len());
        }
        Csr {
            rows: rows.len(),
            cols,
            crow,
            col,
            val,
        }
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.val.len()
    }

    /// `Aᵀ` in CSR (a counting sort by column; entries of each new row stay in row order).
    pub fn transpose(&self) -> Self {
        let mut count = vec![0usize; self.cols + 1];
        for &c in &self.col {
            count[c as usize + 1] += 1;
        }
        for i in 0..self.cols {
            count[i + 1] += count[i];
        }
        let crow = count.clone();
        let mut next = count;
        let mut col = vec![0u32; self.nnz()];
        let mut val = vec![0f64; self.nnz()];
        for r in 0..self.rows {
            for e in self.crow[r]..self.crow[r + 1] {
                let c = self.col[e] as usize;
                let dst = next[c];
                col[dst] = r as u32;
                val[dst] = self.val[e];
                next[c] += 1;
            }
        }
        Csr {
            rows: self.cols,
            cols: self.rows,
            crow,
            col,
            val,
        }
    }

    /// A sparse CSR tensor of `kind` on `device` (int32 indices while they fit, else int64).
    pub fn to_tensor(&self, kind: Kind, device: Device) -> Result<Tensor> {
        let small =
            self.nnz() <= i32::MAX as usize && self.rows.max(self.cols) <= i32::MAX as usize;
        let (crow, col) = if small {
            let crow: Vec<i32> = self.crow.iter().map(|&v| v as i32).collect();
            let col: Vec<i32> = self.col.iter().map(|&v| v as i32).collect();
            (Tensor::f_from_slice(&crow)?, Tensor::f_from_slice(&col)?)
        } else {
            let crow: Vec<i64> = self.crow.iter().map(|&v| v as i64).collect();
            let col: Vec<i64> = self.col.iter().map(|&v| v as i64).collect();
            (Tensor::f_from_slice(&crow)?, Tensor::f_from_slice(&col)?)
        };
        let val = Tensor::f_from_slice(&self.val)?.f_to_kind(kind)?;
        Ok(Tensor::f_sparse_csr_tensor_crow_col_value_size(
            &crow.f_to_device(device)?,
            &col.f_to_device(device)?,
            &val.f_to_device(device)?,
            [self.rows as i64, self.cols as i64],
            (kind, device),
        )?)
    }
}

/// Sorts `(column, weight)` pairs by column and sums duplicates, dropping exact zeros.
pub(crate) fn merge_sorted(mut e: Vec<(u32, f64)>) -> Vec<(u32, f64)> {
    e.sort_unstable_by_key(|&(c, _)| c);
    let mut out: Vec<(u32, f64)> = Vec::with_capacity(e.len() / 2 + 1);
    for (c, v) in e {
        match out.last_mut() {
            Some(last) if last.0 == c => last.1 += v,
            _ => out.push((c, v)),
        }
    }
    out.retain(|&(_, v)| v != 0.0);
    out
}

pub(crate) fn check_indexable(n: usize, what: &str) -> Result<()> {
    if n > u32::MAX as usize {
        return Err(OperatorError::Invalid(format!(
            "sparse backend: {what} has {n} columns, more than 32-bit column indices hold"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_of_a_small_matrix() {
        // [[1, 0, 2], [0, 3, 0]]
        let m = Csr::from_rows(vec![vec![(0, 1.0), (2, 2.0)], vec![(1, 3.0)]], 3);
        let t = m.transpose();
        assert_eq!(t.rows, 3);
        assert_eq!(t.crow, vec![0, 1, 2, 3]);
        assert_eq!(t.col, vec![0, 1, 0]);
        assert_eq!(t.val, vec![1.0, 3.0, 2.0]);
        assert_eq!(t.transpose(), m);
    }

    #[test]
    fn merge_sums_duplicates_and_drops_zeros() {
        let m = merge_sorted(vec![(3, 1.0), (1, 0.5), (3, 2.0), (2, 0.0)]);
        assert_eq!(m, vec![(1, 0.5), (3, 3.0)]);
    }
}
