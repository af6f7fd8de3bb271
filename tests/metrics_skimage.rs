//! PSNR / SSIM / nRMSE against scikit-image 0.26 (fixtures from `scripts/fixtures/metrics.py`;
//! run `make fixtures` first). Tolerance 1e-4 absolute as asked; the measured agreement is
//! ~1e-12, since both sides evaluate the same f64 formulas (the only difference is scipy's
//! running-sum box filter vs our direct sums).
use ndarray::{Array2, Array3, ArrayD, Ix2, Ix3};
use ndarray_npy::read_npy;
use scoreinv::metrics::{
    nrmse, nrmse_tensor, psnr, psnr_batch, psnr_tensor, ssim, ssim_batch, ssim_multichannel,
    ssim_tensor, SsimOptions,
};
use serde_json::Value;
use tch::Tensor;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/fixtures/metrics");
const TOL: f64 = 1e-4;

fn fixture_table() -> serde_json::Map<String, Value> {
    let path = format!("{DIR}/metrics.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}; run `make fixtures` first"));
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

fn load(name: &str, which: &str) -> ArrayD<f64> {
    let path = format!("{DIR}/{name}_{which}.npy");
    read_npy(&path).unwrap_or_else(|e| panic!("{path}: {e}; run `make fixtures` first"))
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() < TOL,
        "{what}: got {got}, scikit-image {want}, diff {}",
        (got - want).abs()
    );
}

#[test]
fn all_pairs_match_scikit_image() {
    let table = fixture_table();
    assert!(table.len() >= 5, "expected at least 5 fixture pairs");
    let mut max_diff: f64 = 0.0;
    for (name, e) in &table {
        let a = load(name, "true");
        let b = load(name, "test");
        let r = e["data_range"].as_f64().unwrap();
        let p = psnr(&a, &b, r).unwrap();
        close(p, e["psnr"].as_f64().unwrap(), &format!("{name} psnr"));
        let n = nrmse(&a, &b).unwrap();
        close(n, e["nrmse"].as_f64().unwrap(), &format!("{name} nrmse"));
        let variants = [
            ("ssim", SsimOptions::default()),
            ("ssim_gaussian", SsimOptions::gaussian()),
            (
                "ssim_gaussian_sample",
                SsimOptions {
                    use_sample_covariance: true,
                    ..SsimOptions::gaussian()
                },
            ),
        ];
        for (key, opts) in variants {
            let got = if a.ndim() == 3 {
                let a3 = a.clone().into_dimensionality::<Ix3>().unwrap();
                let b3 = b.clone().into_dimensionality::<Ix3>().unwrap();
                ssim_multichannel(&a3, &b3, 2, r, &opts)
            } else {
                let a2 = a.clone().into_dimensionality::<Ix2>().unwrap();
                let b2 = b.clone().into_dimensionality::<Ix2>().unwrap();
                ssim(&a2, &b2, r, &opts)
            };
            match e[key].as_f64() {
                Some(want) => {
                    let got = got.unwrap();
                    max_diff = max_diff.max((got - want).abs());
                    close(got, want, &format!("{name} {key}"));
                }
                // Smaller than the 11×11 Gaussian window: scikit-image raises, so must we.
                None => assert!(got.is_err(), "{name} {key}: expected a window-size error"),
            }
        }
    }
    eprintln!("max |ssim - skimage| = {max_diff:e}");
}

#[test]
fn f32_arrays_and_tensors_agree_with_f64() {
    let table = fixture_table();
    // The RGB pair as a channel-first tensor [3, H, W] and the grayscale pair as [H, W].
    let a = load("rgb_noisy", "true")
        .into_dimensionality::<Ix3>()
        .unwrap();
    let b = load("rgb_noisy", "test")
        .into_dimensionality::<Ix3>()
        .unwrap();
    let e = &table["rgb_noisy"];
    let to_chw = |x: &Array3<f64>| {
        let p = x.view().permuted_axes([2, 0, 1]).to_owned();
        let v: Vec<f64> = p.iter().copied().collect();
        Tensor::from_slice(&v).view([3, x.shape()[0] as i64, x.shape()[1] as i64])
    };
    let (ta, tb) = (to_chw(&a), to_chw(&b));
    close(
        ssim_tensor(&ta, &tb, 1.0, &SsimOptions::default()).unwrap(),
        e["ssim"].as_f64().unwrap(),
        "rgb ssim tensor",
    );
    close(
        psnr_tensor(&ta, &tb, 1.0).unwrap(),
        e["psnr"].as_f64().unwrap(),
        "rgb psnr tensor",
    );
    close(
        nrmse_tensor(&ta, &tb).unwrap(),
        e["nrmse"].as_f64().unwrap(),
        "rgb nrmse tensor",
    );
    // A batch of two: one score per sample, equal to the single-image ones.
    let batch_a = Tensor::stack(&[&ta, &ta.flip([2])], 0);
    let batch_b = Tensor::stack(&[&tb, &tb.flip([2])], 0);
    let ps = psnr_batch(&batch_a, &batch_b, 1.0).unwrap();
    assert_eq!(ps.len(), 2);
    close(ps[0], e["psnr"].as_f64().unwrap(), "batch psnr");
    close(
        ps[1],
        e["psnr"].as_f64().unwrap(),
        "batch psnr (flipped: same pixels)",
    );
    let ss = ssim_batch(&batch_a, &batch_b, 1.0, &SsimOptions::gaussian()).unwrap();
    close(
        ss[0],
        e["ssim_gaussian"].as_f64().unwrap(),
        "batch ssim gaussian",
    );

    // f32: the fixture rounded to f32 changes SSIM by ~1e-7, far below 1e-4.
    let g = &table["camera_noisy"];
    let a2: Array2<f64> = load("camera_noisy", "true").into_dimensionality().unwrap();
    let b2: Array2<f64> = load("camera_noisy", "test").into_dimensionality().unwrap();
    let (a32, b32) = (a2.mapv(|v| v as f32), b2.mapv(|v| v as f32));
    close(
        ssim(&a32, &b32, 1.0, &SsimOptions::default()).unwrap(),
        g["ssim"].as_f64().unwrap(),
        "f32 ssim",
    );
    let t2 = Tensor::from_slice(a32.as_slice().unwrap()).view([128, 128]);
    let u2 = Tensor::from_slice(b32.as_slice().unwrap()).view([128, 128]);
    close(
        ssim_tensor(&t2, &u2, 1.0, &SsimOptions::default()).unwrap(),
        g["ssim"].as_f64().unwrap(),
        "f32 [H,W] tensor ssim",
    );
}

#[test]
fn analytic_values_and_errors() {
    let a = Array2::from_shape_fn((16, 16), |(i, j)| ((i * 3 + j * 5) % 11) as f64 / 10.0);
    // Identical images: SSIM exactly 1, PSNR infinite, nRMSE 0.
    assert!((ssim(&a, &a, 1.0, &SsimOptions::default()).unwrap() - 1.0).abs() < 1e-12);
    assert!((ssim(&a, &a, 1.0, &SsimOptions::gaussian()).unwrap() - 1.0).abs() < 1e-12);
    assert_eq!(psnr(&a, &a, 1.0).unwrap(), f64::INFINITY);
    assert_eq!(nrmse(&a, &a).unwrap(), 0.0);
    // Constant offset 0.1: MSE = 0.01, PSNR = 20 dB for data range 1.
    let b = &a + 0.1;
    assert!((psnr(&a, &b, 1.0).unwrap() - 20.0).abs() < 1e-9);
    // Errors, not panics: shape mismatch, window too large, bad range, NaN.
    let small = Array2::<f64>::zeros((6, 20));
    assert!(ssim(&small, &small, 1.0, &SsimOptions::default()).is_err());
    assert!(psnr(&a, &Array2::zeros((16, 15)), 1.0).is_err());
    assert!(psnr(&a, &b, 0.0).is_err());
    let mut n = a.clone();
    n[[3, 3]] = f64::NAN;
    assert!(ssim(&a, &n, 1.0, &SsimOptions::default()).is_err());
    assert!(ssim_tensor(
        &Tensor::zeros([2, 3, 8, 8], (tch::Kind::Float, tch::Device::Cpu)),
        &Tensor::zeros([2, 3, 8, 8], (tch::Kind::Float, tch::Device::Cpu)),
        1.0,
        &SsimOptions::default()
    )
    .is_err());
}
