//! FIR up/down-sampling of StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image
//! Quality of StyleGAN"), as used by NCSN++ (score_sde_pytorch `models/up_or_down_sampling.py`).
//!
//! `upfirdn2d(x, k, up, down, p₀, p₁)`: insert `up − 1` zeros after every pixel, zero-pad
//! (or crop, when negative) by `p₀` before and `p₁` after in both H and W, convolve every
//! channel with the 2-D kernel `k` (a true convolution: correlation with the flipped kernel),
//! keep every `down`-th output. The 1-D kernel `k₁` becomes `k = k₁ k₁ᵀ / Σ(k₁ k₁ᵀ)` (times the
//! gain `factor²` for upsampling), so a constant image stays constant away from the border.
//! This reproduces upstream's `upfirdn2d_native`, which is what score_sde_pytorch runs on CPU.

use tch::{Kind, Tensor};

/// Python floor division (the pads below may be negative for short kernels).
fn floor_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

/// A normalised 2-D FIR kernel `k₁ k₁ᵀ / Σ · gain`, already flipped and shaped `[1, 1, kh, kw]`
/// for `conv2d` (on CPU, float32 unless `kind` says otherwise).
#[derive(Debug)]
pub struct FirKernel {
    /// Flipped, normalised kernel `[1, 1, n, n]`.
    flipped: Tensor,
    /// Side length `n`.
    pub len: i64,
}

impl FirKernel {
    /// `k₁ k₁ᵀ / Σ(k₁ k₁ᵀ) · gain` built in f64, stored as `kind` on `device`.
    pub fn new(k1: &[f64], gain: f64, kind: Kind, device: tch::Device) -> Self {
        let n = k1.len();
        let mut k = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                k[i * n + j] = k1[i] * k1[j];
            }
        }
        let s: f64 = k.iter().sum();
        for v in k.iter_mut() {
            *v = *v / s * gain;
        }
        let t = Tensor::from_slice(&k)
            .reshape([1, 1, n as i64, n as i64])
            .flip([2, 3])
            .to_kind(kind)
            .to_device(device);
        FirKernel {
            flipped: t,
            len: n as i64,
        }
    }

    /// A copy sharing the kernel storage.
    pub fn shallow(&self) -> Self {
        FirKernel {
            flipped: self.flipped.shallow_clone(),
            len: self.len,
        }
    }

    fn for_input(&self, x: &Tensor) -> Tensor {
        // No-ops (no copy) when kind and device already match.
        self.flipped.to_kind(x.kind()).to_device(x.device())
    }
}

/// `upfirdn2d_native` with the same `up`, `down` and `(pad0, pad1)` in both axes.
///
/// Every channel is filtered by one depthwise convolution (`groups = C`, the kernel repeated
/// per channel) rather than upstream's `[N·C, 1, H, W]` reshape and single-channel
/// convolution: the same sums in the same order (bit-identical on the CPU), but oneDNN runs a
/// one-channel convolution through its 16-channel blocked layout, so upstream's form took
/// 28 % of a batched CT reconstruction's wall time and 42 % of a CPU training step's
/// (`scripts/bench/cpu_ab`, `docs/bench/cpu-fir-depthwise.txt`).
pub fn upfirdn2d(x: &Tensor, k: &FirKernel, up: i64, down: i64, pad0: i64, pad1: i64) -> Tensor {
    let (n, c, h, w) = x.size4().expect("upfirdn2d expects [N, C, H, W]");
    let mut out = if up > 1 {
        x.reshape([n, c, h, 1, w, 1])
            .constant_pad_nd([0, up - 1, 0, 0, 0, up - 1])
            .reshape([n, c, h * up, w * up])
    } else {
        x.shallow_clone()
    };
    if pad0 != 0 || pad1 != 0 {
        out = out.constant_pad_nd([pad0, pad1, pad0, pad1]);
    }
    let weight = k
        .for_input(x)
        .expand([c, 1, k.len, k.len], false)
        .contiguous();
    out.conv2d(&weight, None::<Tensor>, [down, down], [0, 0], [1, 1], c)
}

/// `upsample_2d(x, k, factor)`: FIR upsampling, `[N,C,H,W] → [N,C,fH,fW]`. `k` must be built
/// with gain `factor²`.
pub fn upsample_2d(x: &Tensor, k: &FirKernel, factor: i64) -> Tensor {
    let p = k.len - factor;
    upfirdn2d(
        x,
        k,
        factor,
        1,
        floor_div(p + 1, 2) + factor - 1,
        floor_div(p, 2),
    )
}

/// `downsample_2d(x, k, factor)`: FIR downsampling, `[N,C,H,W] → [N,C,H/f,W/f]`. `k` has gain 1.
pub fn downsample_2d(x: &Tensor, k: &FirKernel, factor: i64) -> Tensor {
    let p = k.len - factor;
    upfirdn2d(x, k, 1, factor, floor_div(p + 1, 2), floor_div(p, 2))
}

/// `upsample_conv_2d(x, w, k, factor)`: fused FIR upsampling and convolution with
/// `w: [out, in, kh, kw]` (transposed stride-`factor` convolution with the flipped weights, then
/// the FIR filter). `k` must be built with gain `factor²`.
///
/// Upstream writes the weight flip as `w[..., ::-1, ::-1]`, which PyTorch rejects (negative
/// slice step); this is the evident intent (`torch.flip` over the two spatial axes).
pub fn upsample_conv_2d(x: &Tensor, w: &Tensor, k: &FirKernel, factor: i64) -> Tensor {
    let conv_w = w.size()[3];
    let p = (k.len - factor) - (conv_w - 1);
    let wt = w.flip([2, 3]).transpose(0, 1);
    let y = x.conv_transpose2d(
        &wt,
        None::<Tensor>,
        [factor, factor],
        [0, 0],
        [0, 0],
        1,
        [1, 1],
    );
    upfirdn2d(
        &y,
        k,
        1,
        1,
        floor_div(p + 1, 2) + factor - 1,
        floor_div(p, 2) + 1,
    )
}

/// `conv_downsample_2d(x, w, k, factor)`: FIR filter then a stride-`factor` convolution with
/// `w: [out, in, kh, kw]` and no padding. `k` has gain 1.
pub fn conv_downsample_2d(x: &Tensor, w: &Tensor, k: &FirKernel, factor: i64) -> Tensor {
    let conv_w = w.size()[3];
    let p = (k.len - factor) + (conv_w - 1);
    let y = upfirdn2d(x, k, 1, 1, floor_div(p + 1, 2), floor_div(p, 2));
    y.conv2d(w, None::<Tensor>, [factor, factor], [0, 0], [1, 1], 1)
}

/// Nearest-neighbour upsampling by `factor` (`naive_upsample_2d`, also what the non-FIR
/// `Upsample` means).
pub fn naive_upsample_2d(x: &Tensor, factor: i64) -> Tensor {
    let (n, c, h, w) = x.size4().expect("[N, C, H, W]");
    x.reshape([n, c, h, 1, w, 1])
        .expand([n, c, h, factor, w, factor], false)
        .reshape([n, c, h * factor, w * factor])
}

/// Mean over `factor × factor` blocks (`naive_downsample_2d`).
pub fn naive_downsample_2d(x: &Tensor, factor: i64) -> Tensor {
    let (n, c, h, w) = x.size4().expect("[N, C, H, W]");
    x.reshape([n, c, h / factor, factor, w / factor, factor])
        .mean_dim([3i64, 5].as_slice(), false, None::<Kind>)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn kern(gain: f64) -> FirKernel {
        FirKernel::new(&[1.0, 3.0, 3.0, 1.0], gain, Kind::Double, Device::Cpu)
    }

    /// Direct evaluation of upfirdn2d's definition (zero insertion, padding, true convolution,
    /// decimation) on one channel, in plain loops.
    #[allow(clippy::too_many_arguments)]
    fn upfirdn_ref(
        x: &[f64],
        h: usize,
        w: usize,
        k1: &[f64],
        gain: f64,
        up: usize,
        down: usize,
        p0: i64,
        p1: i64,
    ) -> (Vec<f64>, usize, usize) {
        let n = k1.len();
        let s: f64 = k1.iter().sum::<f64>().powi(2);
        let k = |i: usize, j: usize| k1[i] * k1[j] / s * gain;
        let (uh, uw) = (h * up, w * up);
        let up_at = |i: i64, j: i64| -> f64 {
            if i < 0 || j < 0 || i >= uh as i64 || j >= uw as i64 {
                return 0.0;
            }
            let (i, j) = (i as usize, j as usize);
            if i % up != 0 || j % up != 0 {
                0.0
            } else {
                x[(i / up) * w + j / up]
            }
        };
        let ph = (uh as i64 + p0 + p1 - n as i64 + 1) as usize;
        let pw = (uw as i64 + p0 + p1 - n as i64 + 1) as usize;
        let (oh, ow) = ((ph - 1) / down + 1, (pw - 1) / down + 1);
        let mut out = vec![0.0; oh * ow];
        for oi in 0..oh {
            for oj in 0..ow {
                let (ci, cj) = ((oi * down) as i64, (oj * down) as i64);
                let mut acc = 0.0;
                for a in 0..n {
                    for b in 0..n {
                        // correlation with the flipped kernel == convolution
                        acc +=
                            k(n - 1 - a, n - 1 - b) * up_at(ci + a as i64 - p0, cj + b as i64 - p0);
                    }
                }
                out[oi * ow + oj] = acc;
            }
        }
        (out, oh, ow)
    }

    #[test]
    fn upfirdn_matches_loop_definition() {
        // 2 images × 3 channels, each plane different: every plane is filtered on its own
        // (the depthwise convolution must not mix channels or images).
        let (nb, nc, h, w) = (2usize, 3usize, 5usize, 6usize);
        let planes: Vec<Vec<f64>> = (0..nb * nc)
            .map(|p| {
                (0..h * w)
                    .map(|i| ((i * 37 + p * 13) % 11) as f64 - 4.0 + p as f64 * 0.25)
                    .collect()
            })
            .collect();
        let xt = Tensor::from_slice(&planes.concat())
            .reshape([nb as i64, nc as i64, h as i64, w as i64]);
        for &(up, down, p0, p1, gain) in &[
            (2usize, 1usize, 2i64, 1i64, 4.0),
            (1, 2, 1, 1, 1.0),
            (1, 1, 2, 2, 1.0),
            (2, 1, -1, 0, 4.0),
        ] {
            let k = FirKernel::new(&[1.0, 3.0, 3.0, 1.0], gain, Kind::Double, Device::Cpu);
            let got = upfirdn2d(&xt, &k, up as i64, down as i64, p0, p1);
            let mut want = Vec::new();
            let (mut oh, mut ow) = (0, 0);
            for x in &planes {
                let (r, rh, rw) =
                    upfirdn_ref(x, h, w, &[1.0, 3.0, 3.0, 1.0], gain, up, down, p0, p1);
                want.extend(r);
                (oh, ow) = (rh, rw);
            }
            assert_eq!(got.size(), vec![nb as i64, nc as i64, oh as i64, ow as i64]);
            let got: Vec<f64> = got.flatten(0, -1).try_into().unwrap();
            for (i, (g, r)) in got.iter().zip(&want).enumerate() {
                // f64 sums of <= 16 terms: agreement to rounding.
                assert!(
                    (g - r).abs() < 1e-12,
                    "up {up} down {down}, plane {}: {g} vs {r}",
                    i / (oh * ow)
                );
            }
        }
    }

    #[test]
    fn fir_upsample_of_constant_is_constant_inside() {
        // Normalised kernel with gain factor² = 4: interior pixels of a constant image stay at
        // the constant (each output phase sums 4 kernel taps = 1/4 of the total mass · 4).
        let x = Tensor::full([1, 2, 8, 8], 3.5, (Kind::Double, Device::Cpu));
        let y = upsample_2d(&x, &kern(4.0), 2);
        assert_eq!(y.size(), vec![1, 2, 16, 16]);
        let inner = y.narrow(2, 2, 12).narrow(3, 2, 12);
        let err = (inner - 3.5).abs().max().double_value(&[]);
        assert!(err < 1e-12, "{err}");
    }

    #[test]
    fn fir_downsample_of_constant_is_constant_inside() {
        let x = Tensor::full([1, 1, 8, 8], -2.0, (Kind::Double, Device::Cpu));
        let y = downsample_2d(&x, &kern(1.0), 2);
        assert_eq!(y.size(), vec![1, 1, 4, 4]);
        let inner = y.narrow(2, 1, 2).narrow(3, 1, 2);
        assert!((inner + 2.0).abs().max().double_value(&[]) < 1e-12);
    }

    #[test]
    fn fused_ops_equal_unfused() {
        // upsample_conv_2d(x, w) == conv2d(upsample_2d(x), w, pad 1) for a 3x3 kernel and
        // the [1,3,3,1] filter (the fused op pads once; with these sizes both are "same").
        let x = Tensor::randn([2, 3, 6, 6], (Kind::Double, Device::Cpu));
        let w = Tensor::randn([4, 3, 3, 3], (Kind::Double, Device::Cpu));
        let a = upsample_conv_2d(&x, &w, &kern(4.0), 2);
        let b =
            upsample_2d(&x, &kern(4.0), 2).conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1);
        assert_eq!(a.size(), vec![2, 4, 12, 12]);
        // The fused op's padding is placed once around the whole pipeline; compare interiors.
        let d = (a.narrow(2, 2, 8).narrow(3, 2, 8) - b.narrow(2, 2, 8).narrow(3, 2, 8))
            .abs()
            .max()
            .double_value(&[]);
        assert!(d < 1e-10, "{d}");
        // conv_downsample_2d == FIR downsampling of the full-resolution convolution (filter
        // and convolution commute); compare away from the border.
        let a = conv_downsample_2d(&x, &w, &kern(1.0), 2);
        let b = downsample_2d(
            &x.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1),
            &kern(1.0),
            2,
        );
        assert_eq!(a.size(), vec![2, 4, 3, 3]);
        let d = (a.narrow(2, 1, 1).narrow(3, 1, 1) - b.narrow(2, 1, 1).narrow(3, 1, 1))
            .abs()
            .max()
            .double_value(&[]);
        assert!(d < 1e-10, "{d}");
    }

    #[test]
    fn naive_resampling() {
        let x = Tensor::arange(4, (Kind::Double, Device::Cpu)).reshape([1, 1, 2, 2]);
        let up = naive_upsample_2d(&x, 2);
        let want = Tensor::from_slice(&[
            0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 2.0, 2.0, 3.0, 3.0,
        ])
        .reshape([1, 1, 4, 4]);
        assert_eq!(
            (up.shallow_clone() - &want).abs().max().double_value(&[]),
            0.0
        );
        let down = naive_downsample_2d(&up, 2);
        assert_eq!((down - x).abs().max().double_value(&[]), 0.0);
    }
}
