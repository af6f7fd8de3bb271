//! Operator benchmarks: parallel-beam Radon forward `A x`, adjoint `Aᵀ y` and FBP (Kak &
//! Slaney 1988, as scikit-image `radon` / `iradon`), and the single-coil MRI operator
//! `A = M F` with the centred orthonormal FFT (fastMRI `fft2c`), against scikit-image and NumPy
//! timed in the same run. Each figure is seconds per batch.

use super::{field, time, BenchContext, Measurement};
use ndarray::{Array2, Axis};
use scoreinv::operators::masks::SamplingMask;
use scoreinv::operators::reference::fft as ref_fft;
use scoreinv::operators::{LinearOperator, MriFourier, ParallelBeamRadon, RadonBackend};
use scoreinv::{Error, Result};
use tch::{Device, Kind, Tensor};

/// Radon geometry and batch of the operator suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RadonSize {
    pub n: usize,
    pub angles: usize,
    pub batch: usize,
}

impl RadonSize {
    /// 256², 180 angles, batch 8; `quick`: 64², 60 angles, batch 2.
    pub fn for_run(quick: bool) -> Self {
        if quick {
            Self {
                n: 64,
                angles: 60,
                batch: 2,
            }
        } else {
            Self {
                n: 256,
                angles: 180,
                batch: 8,
            }
        }
    }
}

/// MRI image size and batch: 320², batch 8 (the fastMRI knee crop); `quick`: 64², batch 2.
pub fn mri_size(quick: bool) -> (usize, usize) {
    if quick {
        (64, 2)
    } else {
        (320, 8)
    }
}

/// The disc phantom-like input both sides use: uniform noise inside the inscribed circle of
/// radius `n/2 − 1` (scikit-image's `circle=True` requires zeros outside).
pub(super) fn disc_images(batch: usize, n: usize, device: Device) -> Tensor {
    (Tensor::rand(
        [batch as i64, 1, n as i64, n as i64],
        (Kind::Float, Device::Cpu),
    ) * disc(n))
    .to_device(device)
}

/// `[1, 1, n, n]` CPU tensor: 1 inside the circle of radius `n/2 − 1` about the grid's
/// geometric centre `((n − 1)/2, (n − 1)/2)`, 0 outside.
pub(super) fn disc(n: usize) -> Tensor {
    let c = (n as f64 - 1.0) / 2.0;
    let r = n as f64 / 2.0 - 1.0;
    Tensor::from_slice(
        &(0..n * n)
            .map(|i| {
                let (y, x) = ((i / n) as f64, (i % n) as f64);
                if (y - c).powi(2) + (x - c).powi(2) <= r * r {
                    1.0f32
                } else {
                    0.0
                }
            })
            .collect::<Vec<_>>(),
    )
    .reshape([1, 1, n as i64, n as i64])
}

/// The Cartesian mask of the MRI rows (every 4th column plus a centre band of ±n/25 columns),
/// identical to the one `reference.py mri` builds.
pub fn mri_mask(n: usize) -> Result<SamplingMask> {
    let c = n / 2;
    let band = n / 25;
    let m = Array2::from_shape_fn((n, n), |(_, x)| {
        if x % 4 == 0 || (x + band >= c && x < c + band) {
            1.0f32
        } else {
            0.0
        }
    });
    Ok(SamplingMask::from_array(
        m,
        "bench: every 4th line + centre",
    )?)
}

/// Arguments of `reference.py radon_torch` (the PyTorch `grid_sample` Radon and FBP) for `n²`
/// images, `angles` full-view angles and `batch` images on `dev`.
pub fn radon_torch_args(n: usize, angles: usize, batch: usize, dev: Device) -> Vec<String> {
    vec![
        "radon_torch".into(),
        "--size".into(),
        n.to_string(),
        "--angles".into(),
        angles.to_string(),
        "--batch".into(),
        batch.to_string(),
        "--device".into(),
        super::device_label(dev),
    ]
}

/// The name of a resolved Radon backend in row names.
fn backend_label(backend: RadonBackend) -> &'static str {
    match backend {
        RadonBackend::Sparse => "sparse CSR",
        RadonBackend::TensorOps => "tensor ops",
        RadonBackend::Reference => "ndarray reference",
        RadonBackend::Auto => "auto",
    }
}

/// Radon images/s at torch-radon's benchmark geometry (256², 256 angles, float32): forward and
/// forward + adjoint of the default (sparse CSR) backend, batch 64 and 256 on a GPU, 8 on the
/// CPU or in a quick run. The reference in the same run is the usual PyTorch-eager Radon on the
/// same device (`reference.py radon_torch`: `affine_grid` + `grid_sample` rotate-and-sum, its
/// autograd vector-Jacobian product as the adjoint). torch-radon (not installable here)
/// publishes about 19.5k images/s forward on a V100.
fn radon_throughput(
    ctx: &BenchContext,
    progress: &dyn Fn(&str),
    (n, angles): (usize, usize),
) -> Result<Vec<Measurement>> {
    let dev = ctx.device;
    let batches: &[usize] = if ctx.quick || dev == Device::Cpu {
        &[8]
    } else {
        &[64, 256]
    };
    let op = ParallelBeamRadon::full_view(n, angles, Kind::Float, dev)?;
    let label = backend_label(op.backend());
    let r = ctx.repeats();
    let mut rows = Vec::new();
    for &batch in batches {
        let tag = format!("{n}x{n} {angles} angles batch {batch} [{label}]");
        progress(&format!("radon {tag}: PyTorch grid_sample reference"));
        let reference = ctx.reference(&radon_torch_args(n, angles, batch, dev));
        let ref_rate = |k: &str| -> Option<f64> {
            reference
                .as_ref()
                .and_then(|v| field(v, k).ok())
                .map(|t| batch as f64 / t)
        };
        progress(&format!("radon {tag}: scoreinv images/s"));
        let x = disc_images(batch, n, dev);
        let t_fwd = time(r, dev, &mut || {
            op.forward(&x).map(drop).map_err(Error::from)
        })?;
        let t_both = time(r, dev, &mut || {
            let y2 = op.forward(&x)?;
            op.adjoint(&y2).map(drop).map_err(Error::from)
        })?;
        let per_s = |t: f64| batch as f64 / t;
        rows.push(Measurement::new(
            format!("radon forward {tag}"),
            dev,
            "images/s",
            per_s(t_fwd.median_s),
            "PyTorch eager affine_grid + grid_sample rotate-and-sum (same device)",
            ref_rate("forward"),
        )?);
        rows.push(Measurement::new(
            format!("radon forward+adjoint {tag}"),
            dev,
            "images/s",
            per_s(t_both.median_s),
            "PyTorch eager grid_sample forward + autograd adjoint (same device)",
            ref_rate("forward_adjoint"),
        )?);
    }
    Ok(rows)
}

/// Runs the operator suite.
pub fn run(ctx: &BenchContext, progress: &dyn Fn(&str)) -> Result<Vec<Measurement>> {
    let r = ctx.repeats();
    let dev = ctx.device;
    let mut rows = Vec::new();

    let s = RadonSize::for_run(ctx.quick);
    let tag = format!("{}x{} {} angles batch {}", s.n, s.n, s.angles, s.batch);
    progress(&format!("radon {tag}: scikit-image reference"));
    let reference = ctx.reference(&[
        "radon".into(),
        "--size".into(),
        s.n.to_string(),
        "--angles".into(),
        s.angles.to_string(),
        "--batch".into(),
        s.batch.to_string(),
    ]);
    let ref_val = |k: &str| -> Option<f64> { reference.as_ref().and_then(|v| field(v, k).ok()) };
    let x = disc_images(s.batch, s.n, dev);
    let mut backends = vec![RadonBackend::Sparse, RadonBackend::TensorOps];
    if dev == Device::Cpu {
        backends.push(RadonBackend::Reference);
    }
    for backend in backends {
        let label = backend_label(backend);
        progress(&format!("radon {tag}: scoreinv ({label})"));
        let op =
            ParallelBeamRadon::full_view(s.n, s.angles, Kind::Float, dev)?.with_backend(backend)?;
        let y = op.forward(&x)?;
        let t_fwd = time(r, dev, &mut || {
            op.forward(&x).map(drop).map_err(Error::from)
        })?;
        let t_adj = time(r, dev, &mut || {
            op.adjoint(&y).map(drop).map_err(Error::from)
        })?;
        let t_fbp = time(r, dev, &mut || {
            op.pseudo_inverse(&y).map(drop).map_err(Error::from)
        })?;
        for (what, t, key, refname) in [
            (
                "forward",
                t_fwd,
                "forward",
                "scikit-image radon (per image)",
            ),
            (
                "adjoint",
                t_adj,
                "adjoint",
                "scikit-image iradon filter=None (per image)",
            ),
            ("FBP", t_fbp, "fbp", "scikit-image iradon ramp (per image)"),
        ] {
            rows.push(Measurement::new(
                format!("radon {what} {tag} [{label}]"),
                dev,
                "s",
                t.median_s,
                refname,
                ref_val(key),
            )?);
        }
    }

    rows.extend(radon_throughput(
        ctx,
        progress,
        if ctx.quick { (64, 64) } else { (256, 256) },
    )?);

    let (n, b) = mri_size(ctx.quick);
    let tag = format!("{n}x{n} batch {b}");
    progress(&format!("mri {tag}: NumPy reference"));
    let reference = ctx.reference(&[
        "mri".into(),
        "--size".into(),
        n.to_string(),
        "--batch".into(),
        b.to_string(),
    ]);
    let numpy = reference.as_ref().and_then(|v| field(v, "forward").ok());
    progress(&format!("mri {tag}: scoreinv"));
    let mask = mri_mask(n)?;
    let mask_f64 = mask.array().mapv(f64::from);
    let op = MriFourier::new(mask, 1)?;
    let x = Tensor::randn([b as i64, 1, n as i64, n as i64], (Kind::Float, dev));
    let t = time(r, dev, &mut || {
        op.forward(&x).map(drop).map_err(Error::from)
    })?;
    let refname = "NumPy ifftshift/fft2 ortho/fftshift x mask";
    rows.push(Measurement::new(
        format!("mri fft2c+mask forward {tag} [tensor ops]"),
        dev,
        "s",
        t.median_s,
        refname,
        numpy,
    )?);
    // The ndarray reference path, one complex128 image at a time (CPU only).
    let host: ndarray::Array3<f32> = {
        let v: Vec<f32> = Vec::try_from(x.to_device(Device::Cpu).flatten(0, -1))
            .map_err(|e| Error::Invalid(format!("bench: reading images to the host: {e}")))?;
        ndarray::Array3::from_shape_vec((b, n, n), v)
            .map_err(|e| Error::Invalid(format!("bench: image buffer: {e}")))?
    };
    let imgs: Vec<_> = host
        .axis_iter(Axis(0))
        .map(|im| ref_fft::to_complex(&im.mapv(f64::from)))
        .collect();
    let t = time(r, Device::Cpu, &mut || {
        for im in &imgs {
            std::hint::black_box(ref_fft::single_coil_forward(im, &mask_f64));
        }
        Ok(())
    })?;
    rows.push(Measurement::new(
        format!("mri fft2c+mask forward {tag} [ndarray reference]"),
        Device::Cpu,
        "s",
        t.median_s,
        refname,
        numpy,
    )?);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The throughput rows run on any device (here the CPU, quick batch, a small geometry)
    /// and give positive images/s (no reference without a Python).
    #[test]
    fn radon_throughput_rows_measure_images_per_second() {
        let ctx = BenchContext::quick_cpu();
        let rows = radon_throughput(&ctx, &|_| {}, (32, 24)).unwrap();
        assert_eq!(rows.len(), 2);
        for r in &rows {
            assert_eq!(r.unit, "images/s");
            assert!(r.value > 0.0 && r.value.is_finite(), "{r:?}");
            assert!(r.reference_value.is_none());
            assert!(
                r.name.contains("32x32 24 angles batch 8 [sparse CSR]"),
                "{}",
                r.name
            );
        }
    }
}
