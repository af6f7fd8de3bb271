//! Helpers shared by the Radon / FBP integration tests.
#![allow(dead_code)]
use ndarray::{Array2, Array3};
use ndarray_npy::read_npy;
use tch::{Kind, Tensor};

/// `<workspace>/target/fixtures/radon/<name>`, made by `scripts/fixtures/radon.py`.
pub fn fixture2(name: &str) -> Array2<f64> {
    let path = format!(
        "{}/../target/fixtures/radon/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    read_npy(&path).unwrap_or_else(|e| {
        panic!("cannot read fixture {path}: {e}; run `make fixtures` (scripts/fixtures/radon.py)")
    })
}

pub fn fixture1(name: &str) -> Vec<f64> {
    let path = format!(
        "{}/../target/fixtures/radon/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let a: ndarray::Array1<f64> = read_npy(&path).unwrap_or_else(|e| {
        panic!("cannot read fixture {path}: {e}; run `make fixtures` (scripts/fixtures/radon.py)")
    });
    a.to_vec()
}

/// `[1, 1, H, W]` tensor of `kind` from a 2-D array.
pub fn tensor4(a: &Array2<f64>, kind: Kind) -> Tensor {
    let (h, w) = a.dim();
    Tensor::from_slice(a.as_standard_layout().as_slice().unwrap())
        .reshape([1, 1, h as i64, w as i64])
        .to_kind(kind)
}

/// The `[H, W]` plane of a `[1, 1, H, W]` tensor, as f64.
pub fn array2(t: &Tensor) -> Array2<f64> {
    let s = t.size();
    let (h, w) = (s[s.len() - 2] as usize, s[s.len() - 1] as usize);
    let v: Vec<f64> = Vec::try_from(t.to_kind(Kind::Double).contiguous().reshape([-1])).unwrap();
    Array2::from_shape_vec((h, w), v).unwrap()
}

pub fn array3(t: &Tensor) -> Array3<f64> {
    let s = t.size();
    let v: Vec<f64> = Vec::try_from(t.to_kind(Kind::Double).contiguous().reshape([-1])).unwrap();
    Array3::from_shape_vec((s[0] as usize, s[1] as usize, s[2] as usize), v).unwrap()
}

/// `‖a - b‖ / ‖b‖`.
pub fn rel_l2(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

pub fn rel_l2_t(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_kind(Kind::Double);
    let b = b.to_kind(Kind::Double);
    (a - &b).norm().double_value(&[]) / b.norm().double_value(&[])
}

/// PSNR with `data_range = max(truth) - min(truth)` (scikit-image convention when given).
pub fn psnr(rec: &Array2<f64>, truth: &Array2<f64>) -> f64 {
    let max = truth.iter().cloned().fold(f64::MIN, f64::max);
    let min = truth.iter().cloned().fold(f64::MAX, f64::min);
    let mse: f64 = rec
        .iter()
        .zip(truth)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        / truth.len() as f64;
    10.0 * ((max - min).powi(2) / mse).log10()
}

/// Relative error of the dot-product test `⟨A x, y⟩ = ⟨x, Aᵀ y⟩`.
pub fn dot_rel_err(ax: &Tensor, y: &Tensor, x: &Tensor, aty: &Tensor) -> f64 {
    let lhs = (ax.to_kind(Kind::Double) * y.to_kind(Kind::Double))
        .sum(Kind::Double)
        .double_value(&[]);
    let rhs = (x.to_kind(Kind::Double) * aty.to_kind(Kind::Double))
        .sum(Kind::Double)
        .double_value(&[]);
    (lhs - rhs).abs() / lhs.abs().max(rhs.abs()).max(1e-300)
}
