//! Sparse CSR matrices built on the host and applied as libtorch sparse tensors, for the
//! sparse backends of the ray-driven projectors ([`crate::radon`], [`crate::fanbeam`]): a
//! projection matrix is assembled from any ray geometry that gives the bilinear footprints of
//! its samples ([`ray_matrix`]), so every geometry uses the same assembly, transpose and
//! product.
//!
//! Memory: rows are built in parallel blocks of [`ROW_BLOCK`] rows straight into flat column
//! and value arrays of the tensor's element type (entries summed in f64, then rounded once),
//! so a matrix of `nnz` entries takes `nnz · (4 + s)` bytes on the host (int32 column, element
//! size `s`) while it is built, and as much again while it is copied into its tensor.
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use crate::geometry::BilinearSample;
use crate::{OperatorError, Result};

/// Rows per parallel block of [`Csr::build`].
pub(crate) const ROW_BLOCK: usize = 1024;

/// Entries per host → tensor copy of [`Csr::into_tensor`].
const COPY_PIECE: usize = 1 << 20;

/// The projection matrix of a ray geometry: rows `k·A + a` (detector bin `k` of `n_det`, angle
/// `a` of `n_angles`, so that `R x` reshapes to the `[n_det, A]` sinogram directly), columns
/// `r·N + c`, values of `kind`. `samples(a, k, f)` calls `f(footprint, weights)` for every
/// sample of the ray `(a, k)`, the weights already including the sample's quadrature weight;
/// row entries are `Σ w` over the samples whose bilinear corners include pixel `(r, c)`,
/// duplicates summed in f64, exact zeros dropped.
pub(crate) fn ray_matrix<F>(
    n: usize,
    n_det: usize,
    n_angles: usize,
    kind: Kind,
    samples: F,
) -> Result<Csr>
where
    F: Fn(usize, usize, &mut dyn FnMut(&BilinearSample, [f64; 4])) + Sync,
{
    check_indexable(n * n, "the projection matrix")?;
    Csr::build(n_det * n_angles, n * n, kind, |row, e| {
        let (k, a) = (row / n_angles, row % n_angles);
        samples(a, k, &mut |b, w| {
            for (q, p) in b.corners_in_grid(n) {
                if w[q] != 0.0 {
                    e.push((p as u32, w[q]));
                }
            }
        });
    })
}

/// `M vᵀ` for each row `v` of `x` `[m, cols]` with the sparse `M` `[rows, cols]`: `[m, rows]`.
/// The dense operand is made row-major `[cols, m]` first, so that every stored entry of `M`
/// reads `m` contiguous values (with a column-major operand cuSPARSE SpMM is ~4× slower).
/// `Rᵀ` is stored rather than applied as `R.t()`: libtorch's CPU product with the transposed
/// (CSC) layout was 57× slower than with a CSR matrix of the same entries (torch 2.11;
/// `scripts/bench/csr_transposed_product.py`, docs/bench/cpu-csr-transposed-product.txt).
pub(crate) fn sparse_apply(mat: &Tensor, x: &Tensor) -> Result<Tensor> {
    let xt = x.f_transpose(0, 1)?.f_contiguous()?;
    Ok(mat.f_mm(&xt)?.f_transpose(0, 1)?.f_contiguous()?)
}

/// Stored values in the element type of the tensor they become.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Values {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Values {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Double => Values::F64(Vec::new()),
            _ => Values::F32(Vec::new()),
        }
    }

    fn with_capacity(&self, cap: usize) -> Self {
        match self {
            Values::F32(_) => Values::F32(Vec::with_capacity(cap)),
            Values::F64(_) => Values::F64(Vec::with_capacity(cap)),
        }
    }

    /// Appends `v` rounded to the element type.
    fn push(&mut self, v: f64) {
        match self {
            Values::F32(x) => x.push(v as f32),
            Values::F64(x) => x.push(v),
        }
    }

    fn clear(&mut self) {
        match self {
            Values::F32(x) => x.clear(),
            Values::F64(x) => x.clear(),
        }
    }

    /// A copy allocated at exactly its length.
    fn exact_copy(&self) -> Self {
        match self {
            Values::F32(x) => Values::F32(x.as_slice().to_vec()),
            Values::F64(x) => Values::F64(x.as_slice().to_vec()),
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Values::F32(_) => Kind::Float,
            Values::F64(_) => Kind::Double,
        }
    }

    /// Value `i` as f64 (exact).
    #[cfg(test)]
    pub fn get(&self, i: usize) -> f64 {
        match self {
            Values::F32(x) => f64::from(x[i]),
            Values::F64(x) => x[i],
        }
    }

    /// A 1-D tensor of entries `a..b`.
    fn slice_tensor(&self, a: usize, b: usize) -> Result<Tensor> {
        Ok(match self {
            Values::F32(x) => Tensor::f_from_slice(&x[a..b])?,
            Values::F64(x) => Tensor::f_from_slice(&x[a..b])?,
        })
    }
}

/// An output array that the groups of [`Csr::transpose`] write at disjoint positions.
struct SharedOut<T>(*mut T);

// SAFETY: the pointer is only written at positions that no other thread touches.
unsafe impl<T: Send> Sync for SharedOut<T> {}

impl<T> SharedOut<T> {
    /// # Safety
    /// `p` is inside the array, and no other thread reads or writes position `p`.
    unsafe fn write(&self, p: usize, x: T) {
        // SAFETY: as the caller guarantees.
        unsafe { *self.0.add(p) = x }
    }
}

/// Consecutive stored entries (a block of rows).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Chunk {
    pub col: Vec<u32>,
    pub val: Values,
}

/// A sparse matrix in compressed-row form on the host, its entries in row order split into
/// [`Chunk`]s (one per block of rows as built, one for a transpose).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Csr {
    pub rows: usize,
    pub cols: usize,
    /// Element kind of the values (`Float` or `Double`).
    pub kind: Kind,
    /// Row `i` holds entries `crow[i]..crow[i + 1]` (counted across the chunks).
    pub crow: Vec<usize>,
    pub chunks: Vec<Chunk>,
}

impl Csr {
    /// Builds a `rows × cols` matrix in parallel blocks of [`ROW_BLOCK`] rows: `fill(i, e)`
    /// pushes the `(column, value)` pairs of row `i` (any order, duplicates allowed) into the
    /// empty `e`; they are sorted by column, duplicates summed in f64, exact zeros dropped, and
    /// the sums rounded to `kind` (`Float` or `Double`).
    pub fn build<F>(rows: usize, cols: usize, kind: Kind, fill: F) -> Result<Self>
    where
        F: Fn(usize, &mut Vec<(u32, f64)>) + Sync,
    {
        check_indexable(cols, "the matrix")?;
        let proto = Values::new(kind);
        // Each block is merged into reused scratch arrays and then copied out at its exact
        // size: growing every block's own arrays left freed growth slack scattered through the
        // heap, which an allocator that keeps freed memory (as the CLI's does) holds resident.
        let blocks: Vec<(Vec<usize>, Chunk)> = (0..rows.div_ceil(ROW_BLOCK))
            .into_par_iter()
            .map_init(
                || (Vec::new(), Vec::new(), proto.with_capacity(0)),
                |(e, col, val), b| {
                    let (r0, r1) = (b * ROW_BLOCK, ((b + 1) * ROW_BLOCK).min(rows));
                    let mut lens = Vec::with_capacity(r1 - r0);
                    col.clear();
                    val.clear();
                    for i in r0..r1 {
                        e.clear();
                        fill(i, e);
                        let before = col.len();
                        merge_into(e, col, val);
                        lens.push(col.len() - before);
                    }
                    let chunk = Chunk {
                        col: col.as_slice().to_vec(),
                        val: val.exact_copy(),
                    };
                    (lens, chunk)
                },
            )
            .collect();
        let mut crow = Vec::with_capacity(rows + 1);
        crow.push(0);
        let mut chunks = Vec::with_capacity(blocks.len());
        for (lens, chunk) in blocks {
            for l in lens {
                crow.push(crow[crow.len() - 1] + l);
            }
            chunks.push(chunk);
        }
        Ok(Csr {
            rows,
            cols,
            kind: proto.kind(),
            crow,
            chunks,
        })
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.crow[self.rows]
    }

    /// `Aᵀ` in CSR, as one chunk: a counting sort by column, in parallel over groups of
    /// consecutive chunks (each group counts its columns, then scatters into its own part of
    /// every new row), so the entries of each new row stay in row order and the result does
    /// not depend on the number of threads.
    pub fn transpose(&self) -> Self {
        let (crow, col, val) = match self.kind {
            Kind::Double => {
                let v: Vec<&[f64]> = (self.chunks.iter())
                    .filter_map(|c| match &c.val {
                        Values::F64(v) => Some(&v[..]),
                        Values::F32(_) => None,
                    })
                    .collect();
                let (crow, col, val) = self.transposed(&v);
                (crow, col, Values::F64(val))
            }
            _ => {
                let v: Vec<&[f32]> = (self.chunks.iter())
                    .filter_map(|c| match &c.val {
                        Values::F32(v) => Some(&v[..]),
                        Values::F64(_) => None,
                    })
                    .collect();
                let (crow, col, val) = self.transposed(&v);
                (crow, col, Values::F32(val))
            }
        };
        Csr {
            rows: self.cols,
            cols: self.rows,
            kind: self.kind,
            crow,
            chunks: vec![Chunk { col, val }],
        }
    }

    /// The row pointers, columns and values (`vals`: one slice per chunk) of `Aᵀ`.
    fn transposed<V>(&self, vals: &[&[V]]) -> (Vec<usize>, Vec<u32>, Vec<V>)
    where
        V: Copy + Default + Send + Sync,
    {
        let n_chunks = self.chunks.len();
        let n_groups = rayon::current_num_threads().clamp(1, n_chunks.max(1));
        // Chunks bounds[g]..bounds[g + 1] form group g; first[i] is chunk i's first entry.
        let bounds: Vec<usize> = (0..=n_groups).map(|g| g * n_chunks / n_groups).collect();
        let mut first = Vec::with_capacity(n_chunks + 1);
        first.push(0);
        for ch in &self.chunks {
            first.push(first[first.len() - 1] + ch.col.len());
        }
        let mut next: Vec<Vec<usize>> = (0..n_groups)
            .into_par_iter()
            .map(|g| {
                let mut count = vec![0usize; self.cols];
                for ch in &self.chunks[bounds[g]..bounds[g + 1]] {
                    for &c in &ch.col {
                        count[c as usize] += 1;
                    }
                }
                count
            })
            .collect();
        // New row c holds group 0's entries of column c, then group 1's, …: `next[g][c]` becomes
        // where group g writes its next entry of column c.
        let mut crow = Vec::with_capacity(self.cols + 1);
        let mut acc = 0;
        for c in 0..self.cols {
            crow.push(acc);
            for g in next.iter_mut() {
                let k = g[c];
                g[c] = acc;
                acc += k;
            }
        }
        crow.push(acc);
        let nnz = self.nnz();
        let (mut col, mut val) = (vec![0u32; nnz], vec![V::default(); nnz]);
        let (col_out, val_out) = (SharedOut(col.as_mut_ptr()), SharedOut(val.as_mut_ptr()));
        next.into_par_iter().enumerate().for_each(|(g, mut next)| {
            let mut e = first[bounds[g]];
            // The row of `A` holding entry e (rows may be empty).
            let mut r = self.crow.partition_point(|&s| s <= e).saturating_sub(1);
            let (lo, hi) = (bounds[g], bounds[g + 1]);
            for (ch, v) in self.chunks[lo..hi].iter().zip(&vals[lo..hi]) {
                for (&c, &x) in ch.col.iter().zip(v.iter()) {
                    while self.crow[r + 1] <= e {
                        r += 1;
                    }
                    let p = next[c as usize];
                    assert!(p < crow[c as usize + 1], "entry {e} outside its new row");
                    // SAFETY: p < nnz (asserted above); group g alone writes positions
                    // next[g][c]..next[g][c] + count[g][c] of new row c, each once, and the
                    // vectors outlive this loop.
                    unsafe {
                        col_out.write(p, r as u32);
                        val_out.write(p, x);
                    }
                    next[c as usize] = p + 1;
                    e += 1;
                }
            }
        });
        (crow, col, val)
    }

    /// The sparse CSR tensor on `device` (int32 indices while they fit, else int64), its values
    /// of the kind the matrix was built with. The host arrays are freed chunk by chunk as they
    /// are copied (in pieces of [`COPY_PIECE`] entries).
    pub fn into_tensor(self, device: Device) -> Result<Tensor> {
        let nnz = self.nnz();
        let small = nnz <= i32::MAX as usize && self.rows.max(self.cols) <= i32::MAX as usize;
        let (idx, kind) = (if small { Kind::Int } else { Kind::Int64 }, self.kind);
        let crow = if small {
            let v: Vec<i32> = self.crow.iter().map(|&v| v as i32).collect();
            Tensor::f_from_slice(&v)?
        } else {
            let v: Vec<i64> = self.crow.iter().map(|&v| v as i64).collect();
            Tensor::f_from_slice(&v)?
        };
        let col_t = Tensor::f_empty([nnz as i64], (idx, Device::Cpu))?;
        let val_t = Tensor::f_empty([nnz as i64], (kind, Device::Cpu))?;
        let mut off = 0usize;
        for ch in self.chunks {
            let len = ch.col.len();
            for a in (0..len).step_by(COPY_PIECE) {
                let b = (a + COPY_PIECE).min(len);
                let cols = if small {
                    let v: Vec<i32> = ch.col[a..b].iter().map(|&c| c as i32).collect();
                    Tensor::f_from_slice(&v)?
                } else {
                    let v: Vec<i64> = ch.col[a..b].iter().map(|&c| c as i64).collect();
                    Tensor::f_from_slice(&v)?
                };
                let (start, n) = ((off + a) as i64, (b - a) as i64);
                col_t.f_narrow(0, start, n)?.f_copy_(&cols)?;
                val_t
                    .f_narrow(0, start, n)?
                    .f_copy_(&ch.val.slice_tensor(a, b)?)?;
            }
            off += len;
        }
        Ok(Tensor::f_sparse_csr_tensor_crow_col_value_size(
            &crow.f_to_device(device)?,
            &col_t.f_to_device(device)?,
            &val_t.f_to_device(device)?,
            [self.rows as i64, self.cols as i64],
            (kind, device),
        )?)
    }

    /// All entries `(row, column, value)` in row order.
    #[cfg(test)]
    pub fn entries(&self) -> Vec<(usize, u32, f64)> {
        let mut out = Vec::with_capacity(self.nnz());
        let mut r = 0;
        for ch in &self.chunks {
            for (j, &c) in ch.col.iter().enumerate() {
                while self.crow[r + 1] <= out.len() {
                    r += 1;
                }
                out.push((r, c, ch.val.get(j)));
            }
        }
        out
    }
}

/// Sorts the `(column, value)` pairs of `e` by column and appends them to `col` / `val`,
/// duplicates summed in f64, exact zeros dropped.
pub(crate) fn merge_into(e: &mut [(u32, f64)], col: &mut Vec<u32>, val: &mut Values) {
    e.sort_unstable_by_key(|&(c, _)| c);
    let mut i = 0;
    while i < e.len() {
        let (c, mut v) = e[i];
        i += 1;
        while i < e.len() && e[i].0 == c {
            v += e[i].1;
            i += 1;
        }
        if v != 0.0 {
            col.push(c);
            val.push(v);
        }
    }
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

    fn from_rows(rows: Vec<Vec<(u32, f64)>>, cols: usize, kind: Kind) -> Csr {
        Csr::build(rows.len(), cols, kind, |i, e| e.extend_from_slice(&rows[i])).unwrap()
    }

    #[test]
    fn transpose_of_a_small_matrix() {
        // [[1, 0, 2], [0, 3, 0]]
        for kind in [Kind::Float, Kind::Double] {
            let m = from_rows(vec![vec![(0, 1.0), (2, 2.0)], vec![(1, 3.0)]], 3, kind);
            let t = m.transpose();
            assert_eq!(t.rows, 3);
            assert_eq!(t.crow, vec![0, 1, 2, 3]);
            assert_eq!(t.entries(), vec![(0, 0, 1.0), (1, 1, 3.0), (2, 0, 2.0)]);
            assert_eq!(t.transpose().entries(), m.entries());
        }
    }

    /// Several row blocks: the transpose reads across chunks, and the tensor holds the same
    /// entries as the dense matrix they describe; values are rounded once to f32.
    #[test]
    fn blocks_transpose_and_tensor_agree_with_the_dense_matrix() {
        let (rows, cols) = (3 * ROW_BLOCK + 17, 50usize);
        let value = |i: usize, c: usize| ((i * 7 + c * 13) % 11) as f64 / 3.0 - 1.0;
        let fill = |i: usize, e: &mut Vec<(u32, f64)>| {
            for c in (i % 5..cols).step_by(7) {
                // Split into two halves to exercise the duplicate merge.
                e.push((c as u32, value(i, c) / 2.0));
                e.push((c as u32, value(i, c) / 2.0));
            }
        };
        let dense = |kind: Kind| {
            let mut d = vec![0.0f64; rows * cols];
            for i in 0..rows {
                for c in (i % 5..cols).step_by(7) {
                    d[i * cols + c] = match kind {
                        Kind::Float => f64::from(value(i, c) as f32),
                        _ => value(i, c),
                    };
                }
            }
            Tensor::from_slice(&d).reshape([rows as i64, cols as i64])
        };
        for kind in [Kind::Float, Kind::Double] {
            let m = Csr::build(rows, cols, kind, fill).unwrap();
            assert!(m.chunks.len() == 4, "{}", m.chunks.len());
            let want = dense(kind);
            let t = m.transpose().into_tensor(Device::Cpu).unwrap();
            assert_eq!(t.kind(), kind);
            let got = t.to_dense(None, false).to_kind(Kind::Double);
            assert_eq!(f64::try_from((got - want.tr()).abs().max()).unwrap(), 0.0);
            let got = m.into_tensor(Device::Cpu).unwrap().to_dense(None, false);
            let got = got.to_kind(Kind::Double);
            assert_eq!(f64::try_from((got - &want).abs().max()).unwrap(), 0.0);
        }
    }

    /// The parallel transpose splits the chunks into one group per thread: any number of
    /// threads gives the same arrays, and the transpose of the transpose is the matrix itself
    /// (empty rows and columns included).
    #[test]
    fn transpose_does_not_depend_on_the_number_of_threads() {
        let (rows, cols) = (5 * ROW_BLOCK + 3, 37usize);
        let fill = |i: usize, e: &mut Vec<(u32, f64)>| {
            if i % 3 == 1 {
                return; // empty rows
            }
            for c in (i % 4..cols - 2).step_by(5) {
                e.push((c as u32, (i * 31 + c) as f64 / 7.0 - 3.0));
            }
        };
        for kind in [Kind::Float, Kind::Double] {
            let m = Csr::build(rows, cols, kind, fill).unwrap();
            let with = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
                pool.unwrap().install(|| m.transpose())
            };
            let one = with(1);
            for threads in [2, 3, 8] {
                assert_eq!(with(threads), one, "{threads} threads");
            }
            assert_eq!(
                one.crow[cols - 1],
                one.crow[cols],
                "the last columns are empty"
            );
            assert_eq!(with(3).transpose().entries(), m.entries());
        }
    }

    #[test]
    fn merge_sums_duplicates_and_drops_zeros() {
        let (mut col, mut val) = (Vec::new(), Values::new(Kind::Double));
        merge_into(
            &mut [(3, 1.0), (1, 0.5), (3, 2.0), (2, 0.0)],
            &mut col,
            &mut val,
        );
        assert_eq!(col, vec![1, 3]);
        assert_eq!(val, Values::F64(vec![0.5, 3.0]));
    }
}
