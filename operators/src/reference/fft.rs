//! ndarray + ndrustfft reference of the centred orthonormal 2-D FFT and the single-coil MRI
//! operator, written independently of the tch path to cross-check it.
//!
//! ```text
//! fft2c(x)  = fftshift(fft2(ifftshift(x))) / √(H W)
//! ifft2c(k) = fftshift(ifft2(ifftshift(k))) · √(H W) / (H W)
//! ```
//!
//! with NumPy's `fftshift = roll(n // 2)`, `ifftshift = roll(−(n // 2))` per axis.
use ndarray::Array2;
use ndrustfft::{ndfft, ndifft, Complex, FftHandler, Normalization};

/// Rolls every axis of a 2-D array by `shift[axis]` (NumPy `np.roll` semantics).
fn roll2(x: &Array2<Complex<f64>>, sy: isize, sx: isize) -> Array2<Complex<f64>> {
    let (h, w) = x.dim();
    Array2::from_shape_fn((h, w), |(y, xx)| {
        let src_y = (y as isize - sy).rem_euclid(h as isize) as usize;
        let src_x = (xx as isize - sx).rem_euclid(w as isize) as usize;
        x[[src_y, src_x]]
    })
}

/// NumPy `fftshift` over both axes.
pub fn fftshift(x: &Array2<Complex<f64>>) -> Array2<Complex<f64>> {
    let (h, w) = x.dim();
    roll2(x, (h / 2) as isize, (w / 2) as isize)
}

/// NumPy `ifftshift` over both axes.
pub fn ifftshift(x: &Array2<Complex<f64>>) -> Array2<Complex<f64>> {
    let (h, w) = x.dim();
    roll2(x, -((h / 2) as isize), -((w / 2) as isize))
}

fn fft2(x: &Array2<Complex<f64>>, inverse: bool) -> Array2<Complex<f64>> {
    let (h, w) = x.dim();
    let hy = FftHandler::<f64>::new(h).normalization(Normalization::None);
    let hx = FftHandler::<f64>::new(w).normalization(Normalization::None);
    let mut tmp = Array2::<Complex<f64>>::zeros((h, w));
    let mut out = Array2::<Complex<f64>>::zeros((h, w));
    if inverse {
        ndifft(x, &mut tmp, &hx, 1);
        ndifft(&tmp, &mut out, &hy, 0);
    } else {
        ndfft(x, &mut tmp, &hx, 1);
        ndfft(&tmp, &mut out, &hy, 0);
    }
    let scale = 1.0 / ((h * w) as f64).sqrt();
    out.mapv_inplace(|v| v * scale);
    out
}

/// Centred orthonormal 2-D FFT of one `[H, W]` image.
pub fn fft2c(x: &Array2<Complex<f64>>) -> Array2<Complex<f64>> {
    fftshift(&fft2(&ifftshift(x), false))
}

/// Centred orthonormal inverse 2-D FFT of one `[H, W]` k-space.
pub fn ifft2c(k: &Array2<Complex<f64>>) -> Array2<Complex<f64>> {
    fftshift(&fft2(&ifftshift(k), true))
}

/// Real image to complex.
pub fn to_complex(x: &Array2<f64>) -> Array2<Complex<f64>> {
    x.mapv(|v| Complex::new(v, 0.0))
}

/// Single-coil `A = M F` on one `[H, W]` image: `mask ⊙ fft2c(x)`.
pub fn single_coil_forward(x: &Array2<Complex<f64>>, mask: &Array2<f64>) -> Array2<Complex<f64>> {
    let mut k = fft2c(x);
    k.zip_mut_with(mask, |v, &m| *v *= m);
    k
}

/// Single-coil adjoint `Fᴴ M y` (complex) on one `[H, W]` k-space.
pub fn single_coil_adjoint(y: &Array2<Complex<f64>>, mask: &Array2<f64>) -> Array2<Complex<f64>> {
    let mut k = y.clone();
    k.zip_mut_with(mask, |v, &m| *v *= m);
    ifft2c(&k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_match_numpy_roll_for_odd_and_even_sizes() {
        // np.fft.fftshift(np.arange(5)) == [3, 4, 0, 1, 2]; ifftshift == [2, 3, 4, 0, 1].
        let x = Array2::from_shape_fn((1, 5), |(_, i)| Complex::new(i as f64, 0.0));
        let s: Vec<f64> = fftshift(&x).iter().map(|v| v.re).collect();
        assert_eq!(s, vec![3.0, 4.0, 0.0, 1.0, 2.0]);
        let s: Vec<f64> = ifftshift(&x).iter().map(|v| v.re).collect();
        assert_eq!(s, vec![2.0, 3.0, 4.0, 0.0, 1.0]);
    }

    #[test]
    fn delta_at_centre_maps_to_constant() {
        // A delta at the centre (H/2, W/2) has a flat spectrum 1/√(HW) (analytic).
        let (h, w) = (6, 7);
        let mut x = Array2::<Complex<f64>>::zeros((h, w));
        x[[h / 2, w / 2]] = Complex::new(1.0, 0.0);
        let k = fft2c(&x);
        let c = 1.0 / ((h * w) as f64).sqrt();
        for v in k.iter() {
            assert!((v.re - c).abs() < 1e-12 && v.im.abs() < 1e-12);
        }
        let back = ifft2c(&k);
        for (a, b) in back.iter().zip(x.iter()) {
            assert!((a - b).norm() < 1e-12);
        }
    }
}
