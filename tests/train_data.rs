//! Data sources (IDX, NPY, image folders, synthetic Gaussian), the held-out split, flips, and
//! the `scoreinv train` command line end to end.

use scoreinv::models::model_dir::DataInfo;
use scoreinv::train::config::TrainConfig;
use scoreinv::train::data::idx::encode_idx;
use scoreinv::train::data::{
    random_contrast, random_flip, DataSource, Dataset, Gaussian2d, CONTRAST_KNOTS,
};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use tch::{Kind, Tensor};

fn write_gz(path: &std::path::Path, bytes: &[u8]) {
    let f = std::fs::File::create(path).unwrap();
    let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap();
}

#[test]
fn idx_images_and_labels_raw_and_gzip() {
    // 5 images of 3x4 with known bytes, labels 0..4.
    let (n, h, w) = (5usize, 3usize, 4usize);
    let pix: Vec<u8> = (0..n * h * w).map(|i| (i * 7 % 256) as u8).collect();
    let labels: Vec<u8> = (0..n as u8).collect();
    for gz in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (img, lab) = (encode_idx(&[n, h, w], &pix), encode_idx(&[n], &labels));
        if gz {
            write_gz(&dir.path().join("train-images-idx3-ubyte.gz"), &img);
            write_gz(&dir.path().join("train-labels-idx1-ubyte.gz"), &lab);
        } else {
            std::fs::write(dir.path().join("train-images-idx3-ubyte"), &img).unwrap();
            std::fs::write(dir.path().join("train-labels-idx1-ubyte"), &lab).unwrap();
        }
        let src = DataSource::parse(dir.path().to_str().unwrap()).unwrap();
        assert!(matches!(
            src,
            DataSource::Idx {
                labels: Some(_),
                ..
            }
        ));
        let ds = src.load(false).unwrap();
        assert_eq!(ds.data.size(), vec![5, 1, 3, 4]);
        assert_eq!(ds.info.shape, vec![1, 3, 4]);
        assert_eq!(ds.labels.as_deref(), Some(&labels[..]));
        let got: Vec<f32> = Vec::try_from(&ds.data.flatten(0, -1)).unwrap();
        for (g, p) in got.iter().zip(&pix) {
            assert_eq!(*g, *p as f32 / 255.0);
        }
        // Centered: [-1, 1], and denormalize inverts the mapping exactly for these values.
        let dc = src.load(true).unwrap();
        let back = dc.info.denormalize(&dc.data).flatten(0, -1);
        let raw = Tensor::from_slice(&pix).to_kind(Kind::Float);
        assert!((back - raw).abs().max().double_value(&[]) < 1e-4);
    }
}

#[test]
fn idx_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("train-images-idx3-ubyte");
    let mut bytes = encode_idx(&[2, 3, 3], &[0u8; 18]);
    bytes.truncate(bytes.len() - 1);
    std::fs::write(&p, &bytes).unwrap();
    let err = DataSource::parse(dir.path().to_str().unwrap())
        .unwrap()
        .load(false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train-images-idx3-ubyte") && err.contains("18"),
        "{err}"
    );
    let mut bad = encode_idx(&[2, 3, 3], &[0u8; 18]);
    bad[2] = 0x0d; // float
    std::fs::write(&p, &bad).unwrap();
    let err = DataSource::parse(dir.path().to_str().unwrap())
        .unwrap()
        .load(false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("0x0d"), "{err}");
}

#[test]
fn npy_vectors_and_images() {
    let dir = tempfile::tempdir().unwrap();
    let v = ndarray::Array2::<f32>::from_shape_fn((6, 3), |(i, j)| (i * 3 + j) as f32 - 4.0);
    let pv = dir.path().join("vec.npy");
    ndarray_npy::write_npy(&pv, &v).unwrap();
    let ds = DataSource::parse(pv.to_str().unwrap())
        .unwrap()
        .load(true)
        .unwrap();
    assert_eq!(ds.info.shape, vec![3]);
    // Vectors are used as they are (no range, no centering).
    assert_eq!(ds.info.data_range, None);
    assert!(!ds.info.centered);
    assert_eq!(ds.data.double_value(&[0, 0]), -4.0);
    let im =
        ndarray::Array3::<u8>::from_shape_fn((4, 2, 5), |(i, j, k)| (i * 10 + j * 5 + k) as u8);
    let pi = dir.path().join("img.npy");
    ndarray_npy::write_npy(&pi, &im).unwrap();
    let ds = DataSource::parse(pi.to_str().unwrap())
        .unwrap()
        .load(false)
        .unwrap();
    assert_eq!(ds.data.size(), vec![4, 1, 2, 5]);
    assert_eq!(ds.info.data_range, Some((0.0, 255.0)));
    assert!((ds.data.double_value(&[3, 0, 1, 4]) - 39.0 / 255.0).abs() < 1e-7);
    // A 1-D array is refused with the shape.
    let p1 = dir.path().join("bad.npy");
    ndarray_npy::write_npy(&p1, &ndarray::Array1::<f32>::zeros(7)).unwrap();
    let err = DataSource::parse(p1.to_str().unwrap())
        .unwrap()
        .load(false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[7]"), "{err}");
}

#[test]
fn image_folder_sizes_and_channels() {
    let dir = tempfile::tempdir().unwrap();
    let err = DataSource::parse(dir.path().to_str().unwrap())
        .unwrap()
        .load(false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("contains no images"), "{err}");
    for i in 0..3u8 {
        let img = image::GrayImage::from_fn(4, 5, |x, y| image::Luma([i * 50 + (x + y) as u8]));
        img.save(dir.path().join(format!("a{i}.png"))).unwrap();
    }
    let ds = DataSource::parse(dir.path().to_str().unwrap())
        .unwrap()
        .load(false)
        .unwrap();
    assert_eq!(ds.data.size(), vec![3, 1, 5, 4]);
    assert!((ds.data.double_value(&[2, 0, 4, 3]) - 107.0 / 255.0).abs() < 1e-6);
    // --size on non-square images: the central square (rows 0..4 of 5 = rows 0..3 kept from
    // offset (5 - 4) / 2 = 0), not a stretched image.
    let sq = DataSource::parse(dir.path().to_str().unwrap())
        .unwrap()
        .load_sized(false, Some(4))
        .unwrap();
    assert_eq!(sq.data.size(), vec![3, 1, 4, 4]);
    assert!(sq.data.equal(&ds.data.narrow(2, 0, 4)));
    assert!(
        sq.info.source.contains("centre-cropped 4x4"),
        "{}",
        sq.info.source
    );
    // One RGB image makes the set RGB; a different size is refused naming both files.
    image::RgbImage::from_pixel(4, 5, image::Rgb([255, 0, 0]))
        .save(dir.path().join("b.png"))
        .unwrap();
    let ds = DataSource::parse(dir.path().to_str().unwrap())
        .unwrap()
        .load(false)
        .unwrap();
    assert_eq!(ds.data.size(), vec![4, 3, 5, 4]);
    assert_eq!(ds.data.double_value(&[3, 0, 0, 0]), 1.0);
    assert_eq!(ds.data.double_value(&[3, 1, 0, 0]), 0.0);
    image::GrayImage::new(6, 5)
        .save(dir.path().join("c.png"))
        .unwrap();
    let err = DataSource::parse(dir.path().to_str().unwrap())
        .unwrap()
        .load(false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mixes image sizes") && err.contains("c.png") && err.contains("6x5"),
        "{err}"
    );
}

#[test]
fn split_is_deterministic_and_disjoint() {
    let x = Tensor::arange(200, tch::kind::FLOAT_CPU).reshape([100, 2]);
    let ds = Dataset::new(x, None, DataInfo::vectors(2, "arange")).unwrap();
    let (a, b) = ds.split(0.1).unwrap();
    let (a2, b2) = ds.split(0.1).unwrap();
    let (b, b2) = (b.unwrap(), b2.unwrap());
    assert_eq!((a.len(), b.len()), (90, 10));
    assert!(b.data.equal(&b2.data) && a.data.equal(&a2.data));
    let ids = |d: &Dataset| -> Vec<i64> {
        Vec::<f32>::try_from(&d.data.select(1, 0))
            .unwrap()
            .iter()
            .map(|v| *v as i64 / 2)
            .collect()
    };
    let (ia, ib) = (ids(&a), ids(&b));
    assert!(ib.iter().all(|i| !ia.contains(i)));
    // Not simply the last 10 samples.
    assert_ne!(ib, (90..100).collect::<Vec<_>>());
    assert!(ds.split(0.5).unwrap().0.len() == 50);
}

#[test]
fn flips_only_where_asked() {
    let x = Tensor::arange(2 * 2 * 3, tch::kind::FLOAT_CPU).reshape([2, 1, 2, 3]);
    let y = random_flip(&x, &[true, false]);
    assert!(y.get(0).equal(&x.get(0).flip([-1])));
    assert!(y.get(1).equal(&x.get(1)));
}

#[test]
fn random_contrast_is_its_stated_curve() {
    // Two 1×5×5 images over [0, 1] (a clamp test at 1.2 too); the first is remapped.
    let vals: Vec<f32> = (0..50).map(|i| (i % 25) as f32 / 20.0).collect();
    let x = Tensor::from_slice(&vals).reshape([2, 1, 5, 5]);
    let k = CONTRAST_KNOTS;
    let u: Vec<f64> = (0..2 * k).map(|i| ((i * 7) % 11) as f64 / 11.0).collect();
    let y = random_contrast(&x, &[true, false], &u, false);
    // The curve written out independently: knots (j/K, y_j), y_0 = 0, the rest 0.1 + 0.9·u
    // over their maximum.
    let raw: Vec<f64> = u[..k].iter().map(|v| 0.1 + 0.9 * v).collect();
    let top = raw.iter().cloned().fold(0.0, f64::max);
    let knots: Vec<f64> = std::iter::once(0.0)
        .chain(raw.iter().map(|r| r / top))
        .collect();
    let curve = |v: f64| {
        let t = v.clamp(0.0, 1.0) * k as f64;
        let j = (t.floor() as usize).min(k - 1);
        knots[j] + (knots[j + 1] - knots[j]) * (t - j as f64)
    };
    let got: Vec<f32> = Vec::try_from(&y.flatten(0, -1)).unwrap();
    for (i, (&g, &v)) in got.iter().zip(&vals).enumerate() {
        if i < 25 {
            let want = curve(v as f64);
            assert!((g as f64 - want).abs() < 1e-6, "pixel {i}: {g} vs {want}");
        } else {
            assert_eq!(g, v, "pixel {i} of the sample left alone");
        }
    }
    assert_eq!(got[0], 0.0, "background stays dark");
    // Centered data: mapped to [0, 1], remapped, mapped back.
    let yc = random_contrast(&(&x * 2.0 - 1.0), &[true, false], &u, true);
    assert!(yc.allclose(&(&y * 2.0 - 1.0), 1e-6, 1e-6, false));
    // Nothing asked, nothing changed; and the probability is validated.
    assert!(random_contrast(&x, &[false, false], &u, false).equal(&x));
    let mut cfg = TrainConfig::default();
    cfg.data.random_contrast = 1.5;
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("data.random_contrast"), "{e}");
}

#[test]
fn gaussian_sampler_has_its_moments() {
    // 200 000 samples: mean SE = √(Σ_ii/n) ≤ 0.0023, covariance SE ≤ √(2/n)·Σ_ii ≤ 0.0032;
    // 5 SE tolerances.
    let g = Gaussian2d::toy();
    let x = g.sample(200_000, 3).to_kind(Kind::Double);
    let m: Vec<f64> = Vec::try_from(&x.mean_dim(0i64, false, Kind::Double)).unwrap();
    assert!(
        (m[0] - 1.0).abs() < 0.012 && (m[1] + 0.5).abs() < 0.012,
        "{m:?}"
    );
    let c = x.transpose(0, 1).cov(1, None::<Tensor>, None::<Tensor>);
    let c: Vec<f64> = Vec::try_from(&c.flatten(0, -1)).unwrap();
    for (got, want) in c.iter().zip([1.0, 0.6, 0.6, 0.5]) {
        assert!((got - want).abs() < 0.016, "cov {c:?}");
    }
}

fn scoreinv() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scoreinv"));
    c.args(["--device", "cpu", "--threads", "1"]);
    c
}

/// `scoreinv train ARGS… --out OUT` on the CPU, one thread.
fn train(args: &[&str], out: &Path) -> Output {
    scoreinv()
        .arg("train")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// The output of a command that must have succeeded (its stderr is shown otherwise).
fn succeeded(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The stderr of a command that must have failed.
fn failed(out: Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn cli_train_resume_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = succeeded(train(
        &[
            "--data",
            "gaussian2d:500",
            "--preset",
            "tiny",
            "--steps",
            "30",
        ],
        &run,
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("samples/s"), "{stdout}");
    let csv = std::fs::read_to_string(run.join("loss.csv")).unwrap();
    assert!(
        csv.starts_with("step,loss,lr\n1,") && csv.contains("\n30,"),
        "{csv}"
    );
    assert!(run.join("model/config.json").exists() && run.join("model/model.safetensors").exists());

    // Same --out without --resume: refused. With --resume: continues to 40.
    let err = failed(train(&["--data", "gaussian2d:500", "--steps", "40"], &run));
    assert!(err.contains("--resume"));
    let resumed = succeeded(train(
        &["--data", "gaussian2d:500", "--steps", "40", "--resume"],
        &run,
    ));
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("now at step 40"));
    let csv = std::fs::read_to_string(run.join("loss.csv")).unwrap();
    assert!(csv.contains("\n30,") && csv.contains("\n40,"), "{csv}");
    // Contrast remapping is a property of a fresh run, and of images only.
    let err = failed(train(
        &[
            "--data",
            "gaussian2d:500",
            "--resume",
            "--random-contrast",
            "0.5",
        ],
        &run,
    ));
    assert!(err.contains("--random-contrast"), "{err}");
    let err = failed(train(
        &["--data", "gaussian2d:500", "--random-contrast", "0.5"],
        &dir.path().join("r1"),
    ));
    assert!(
        err.contains("data.random_contrast") && err.contains("vectors"),
        "{err}"
    );
    assert!(!dir.path().join("r1").exists());

    // Errors before training: empty folder, resume with other data.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = failed(train(
        &["--data", empty.to_str().unwrap()],
        &dir.path().join("r2"),
    ));
    assert!(err.contains("contains no images"));
    assert!(!dir.path().join("r2").exists());
    let npy = dir.path().join("x3.npy");
    ndarray_npy::write_npy(&npy, &ndarray::Array2::<f32>::ones((8, 3))).unwrap();
    let err = failed(train(
        &["--resume", "--steps", "50", "--data", npy.to_str().unwrap()],
        &run,
    ));
    assert!(err.contains("[2]") && err.contains("[3]"), "{err}");
}

/// The real Fashion-MNIST training set (Debian package dataset-fashion-mnist, installed by
/// `scripts/setup`; a missing package fails the test). Reads 26 MB: 2 s in the test profile.
#[test]
fn fashion_mnist_train_set() {
    let src = DataSource::parse("fashion-mnist").unwrap_or_else(|e| {
        panic!("{e}\n(run scripts/setup, or apt-get install dataset-fashion-mnist)")
    });
    let ds = src.load(true).unwrap();
    // 60 000 images of 28×28, 6 000 per class (Xiao et al. 2017), centered to [-1, 1].
    assert_eq!(ds.data.size(), vec![60_000, 1, 28, 28]);
    let labels = ds.labels.as_ref().unwrap();
    for c in 0..10u8 {
        assert_eq!(
            labels.iter().filter(|&&l| l == c).count(),
            6000,
            "class {c}"
        );
    }
    assert_eq!(ds.data.min().double_value(&[]), -1.0);
    assert_eq!(ds.data.max().double_value(&[]), 1.0);
}

/// The medical/phantom training sources: ellipse phantoms at `--size`, the InVesalius head CT
/// without its held-out block, axial NIfTI slices min–max normalised, and clear errors.
#[test]
fn phantom_invesalius_and_nifti_sources() {
    let e = DataSource::parse("phantom:ellipses:12")
        .unwrap()
        .load_sized(false, Some(16))
        .unwrap();
    assert_eq!(e.data.size(), vec![12, 1, 16, 16]);
    assert!(e.data.min().double_value(&[]) >= 0.0 && e.data.max().double_value(&[]) <= 1.0);
    // The same stream every time (so runs resume on the same data).
    let e2 = DataSource::parse("phantom:ellipses:12")
        .unwrap()
        .load_sized(false, Some(16))
        .unwrap();
    assert!(e.data.equal(&e2.data));
    // The Shepp–Logan phantom: one image, the same as the evaluation case of that name.
    let sl = DataSource::parse("phantom:shepp-logan")
        .unwrap()
        .load_sized(false, Some(16))
        .unwrap();
    assert_eq!(sl.data.size(), vec![1, 1, 16, 16]);
    let case = scoreinv::data::cases::load_cases(
        "phantom:shepp-logan",
        &scoreinv::data::cases::CaseOptions {
            size: Some(16),
            ..Default::default()
        },
    )
    .unwrap();
    let diff = (sl.data.get(0) - &case[0].truth)
        .abs()
        .max()
        .double_value(&[]);
    assert!(diff < 1e-6, "Shepp-Logan source vs case: {diff}");
    assert!(DataSource::parse("phantom:ellipses:0").is_err());
    assert!(DataSource::parse("phantom:ellipses:x").is_err());

    let inv = std::path::Path::new(scoreinv::data::invesalius::CRANIUM_INV3);
    let dir_for_spacing = tempfile::tempdir().unwrap();
    if inv.is_file() {
        let d = DataSource::parse("invesalius")
            .unwrap()
            .load_sized(true, Some(32))
            .unwrap();
        let n = d.data.size()[0];
        // 92 axial slices outside the block, plus non-empty coronal/sagittal slices below it.
        assert!(n > 92 && n < 92 + 512, "{n} slices");
        assert_eq!(d.data.size()[1..], [1, 32, 32]);
        assert!(d.data.min().double_value(&[]) >= -1.0 && d.data.max().double_value(&[]) <= 1.0);
        // Its pixel spacing (0.957 mm at 256, doubled at 128) survives a join with itself, but
        // not one with arrays of unknown spacing (control: the head alone has it).
        let sp = |spec: &str| {
            DataSource::parse(spec)
                .unwrap()
                .load_sized(false, Some(128))
                .unwrap()
                .info
                .spacing_mm
        };
        let head = sp("invesalius").expect("the head CT has a pixel spacing");
        assert!((head[0] - 2.0 * 0.9570312).abs() < 1e-6, "{head:?}");
        assert_eq!(sp("invesalius+invesalius"), Some(head));
        let npy = dir_for_spacing.path().join("x.npy");
        scoreinv::io::npy::write_npy(&npy, &ndarray::Array3::<f32>::zeros((2, 128, 128))).unwrap();
        assert_eq!(sp(&format!("invesalius+{}", npy.display())), None);
    }

    // A NIfTI volume [z=4, y=6, x=5] written here: slice k is constant + a ramp.
    let dir = tempfile::tempdir().unwrap();
    let vol = ndarray::Array3::from_shape_fn((4, 6, 5), |(z, y, x)| (10 * z + y + x) as f32);
    let p = dir.path().join("v.nii.gz");
    scoreinv::io::nifti::write_nifti(&p, &vol, None, None).unwrap();
    let spec = format!("nifti:{}", p.display());
    let d = DataSource::parse(&spec)
        .unwrap()
        .load_sized(false, Some(8))
        .unwrap();
    assert_eq!(d.data.size()[1..], [1, 8, 8]);
    assert!(d.data.size()[0] >= 1 && d.data.size()[0] <= 4);
    assert!((d.data.max().double_value(&[]) - 1.0).abs() < 1e-6);
    assert!(d.data.min().double_value(&[]).abs() < 1e-6);
    let missing = DataSource::parse(&format!("nifti:{}", dir.path().join("no.nii").display()));
    assert!(format!("{:?}", missing.unwrap_err()).contains("no such file"));
}

/// `nifti-crop:` crops each volume in-plane to its foreground box (voxels above 5 % of the
/// range, 2 % margin) before slicing: a 50×50 square of foreground inside a 90×120 field of
/// view gives exactly the slices of the 52×52 crop (margin 1 px per side) loaded with `nifti:`;
/// an empty volume is refused, naming the file.
#[test]
fn nifti_crop_source_crops_to_the_foreground() {
    use scoreinv::train::data::{foreground_box, FOREGROUND_FRACTION, FOREGROUND_MARGIN};
    let dir = tempfile::tempdir().unwrap();
    // Foreground rows 20..70, columns 35..85; a faint background below 5 % of the range.
    let vol = ndarray::Array3::from_shape_fn((3, 90, 120), |(z, y, x)| {
        if (20..70).contains(&y) && (35..85).contains(&x) {
            50.0 + (z * 7 + y + 2 * x) as f32
        } else {
            ((y + x) % 3) as f32 * 0.5
        }
    });
    let (h, w) = foreground_box(&vol, FOREGROUND_FRACTION, FOREGROUND_MARGIN).unwrap();
    assert_eq!((h.clone(), w.clone()), (19..71, 34..86));
    let full = dir.path().join("full.nii.gz");
    scoreinv::io::nifti::write_nifti(&full, &vol, None, None).unwrap();
    let cropped = dir.path().join("cropped.nii.gz");
    let c = vol.slice(ndarray::s![.., h, w]).to_owned();
    scoreinv::io::nifti::write_nifti(&cropped, &c, None, None).unwrap();
    let a = DataSource::parse(&format!("nifti-crop:{}", full.display()))
        .unwrap()
        .load_sized(false, Some(16))
        .unwrap();
    let b = DataSource::parse(&format!("nifti:{}", cropped.display()))
        .unwrap()
        .load_sized(false, Some(16))
        .unwrap();
    assert_eq!(a.data.size(), [3, 1, 16, 16]);
    assert!(
        a.data.equal(&b.data),
        "crop differs from the pre-cropped volume"
    );
    assert!(a
        .info
        .source
        .contains("cropped to each volume's foreground"));
    let uncropped = DataSource::parse(&format!("nifti:{}", full.display()))
        .unwrap()
        .load_sized(false, Some(16))
        .unwrap();
    assert!(!uncropped.data.equal(&a.data));

    let empty = dir.path().join("empty.nii.gz");
    scoreinv::io::nifti::write_nifti(
        &empty,
        &ndarray::Array3::<f32>::zeros((2, 8, 8)),
        None,
        None,
    )
    .unwrap();
    let err = DataSource::parse(&format!("nifti-crop:{}", empty.display()))
        .unwrap()
        .load_sized(false, Some(8))
        .unwrap_err();
    assert!(
        format!("{err}").contains("no foreground") && format!("{err}").contains("empty.nii.gz")
    );
}

/// `dicom:` trains on DICOM slices (a single file or a series folder) through the CT HU window:
/// the slice of pydicom's `CT_small.dcm` equals the ground-truth case `reconstruct` makes of it
/// at the same size (same window, same resize); missing paths are refused when parsed.
#[test]
fn dicom_source_uses_the_hu_window() {
    let fx = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/fixtures/io"));
    let ct = fx.join("CT_small.dcm");
    assert!(
        ct.is_file(),
        "fixture {} is missing: run `make fixtures`",
        ct.display()
    );
    let d = DataSource::parse(&format!("dicom:{}", ct.display()))
        .unwrap()
        .load_sized(false, Some(16))
        .unwrap();
    assert_eq!(d.data.size(), vec![1, 1, 16, 16]);
    assert!(d.info.source.contains("HU window"), "{}", d.info.source);
    let opts = scoreinv::data::cases::CaseOptions {
        size: Some(16),
        ..Default::default()
    };
    let case = scoreinv::data::cases::load_cases(ct.to_str().unwrap(), &opts).unwrap();
    let diff = (d.data.get(0) - &case[0].truth)
        .abs()
        .max()
        .double_value(&[]);
    assert!(diff < 1e-6, "training slice vs reconstruct case: {diff}");
    // The file plus a three-slice series (HU means 413, 573 and 493 ‰ of the window in
    // position order b, a, c; scripts/fixtures/io.py): 4 slices, the series in its order.
    let both = DataSource::parse(&format!(
        "dicom:{},{}",
        ct.display(),
        fx.join("series").display()
    ))
    .unwrap()
    .load_sized(false, Some(16))
    .unwrap();
    assert_eq!(both.data.size(), vec![4, 1, 16, 16]);
    let m: Vec<f64> = (1..4)
        .map(|k| both.data.get(k).mean(Kind::Double).double_value(&[]))
        .collect();
    assert!(m[0] < m[2] && m[2] < m[1], "series slice means {m:?}");
    assert!(
        (m[0] - 0.413).abs() < 0.02 && (m[1] - 0.573).abs() < 0.02,
        "{m:?}"
    );
    let missing = DataSource::parse("dicom:/nonexistent/series").unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("no such DICOM file or series folder"),
        "{missing}"
    );
}

/// `--heldout-data`: a held-out loss is reported although nothing of --data is held out (it
/// comes from the given source), the config records that nothing of --data was held out, and a source of another
/// sample shape is refused before any checkpoint is written.
#[test]
fn cli_train_with_separate_heldout_data() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let args = [
        "--data",
        "gaussian2d:300",
        "--preset",
        "tiny",
        "--steps",
        "20",
    ];
    let out = succeeded(train(
        &[&args[..], &["--heldout-data", "gaussian2d:64"]].concat(),
        &run,
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("held-out DSM loss"), "{stdout}");
    let meta = read_json(&run.join("checkpoint.json"));
    assert_eq!(
        meta["config"]["data"]["heldout_fraction"].as_f64(),
        Some(0.0)
    );

    let run2 = dir.path().join("run2");
    let err = failed(train(
        &[&args[..], &["--heldout-data", "phantom:ellipses:4"]].concat(),
        &run2,
    ));
    assert!(err.contains("--heldout-data phantom:ellipses:4"), "{err}");
    assert!(!run2.exists(), "nothing is written");
}

/// `--init MODEL_DIR`: a new run starts from a trained model (its network and SDE, whatever the
/// preset says), records it in the checkpoint and the exported model, and a model of another
/// sample shape, `--init` without a preset or config, or `--init` with `--resume` is refused
/// before anything is written.
#[test]
fn cli_train_fine_tunes_a_model_dir() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    succeeded(train(
        &[
            "--data",
            "gaussian2d:300",
            "--preset",
            "toy2d",
            "--steps",
            "10",
        ],
        &base,
    ));
    let model_dir = base.join("model");
    let init = model_dir.to_str().unwrap();
    let ft = dir.path().join("ft");
    let out = succeeded(train(
        &[
            "--data",
            "gaussian2d:200",
            "--preset",
            "tiny",
            "--steps",
            "10",
            "--init",
            init,
        ],
        &ft,
    ));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fine-tuning"));
    let base_meta = read_json(&base.join("checkpoint.json"));
    let meta = read_json(&ft.join("checkpoint.json"));
    assert_eq!(meta["config"]["model"], base_meta["config"]["model"]);
    assert_eq!(meta["config"]["sde"], base_meta["config"]["sde"]);
    assert_eq!(meta["config"]["training"]["init"].as_str(), Some(init));
    let model = read_json(&ft.join("model").join("config.json"));
    assert_eq!(model["training"]["init"].as_str(), Some(init));
    assert_eq!(model["training"]["step"].as_u64(), Some(10));

    let bad = dir.path().join("bad");
    let err = failed(train(
        &[
            "--data",
            "phantom:ellipses:4",
            "--preset",
            "tiny",
            "--steps",
            "5",
            "--init",
            init,
        ],
        &bad,
    ));
    assert!(
        err.contains("--init") && err.contains("sample shape"),
        "{err}"
    );
    assert!(!bad.exists(), "nothing is written");
    let err = failed(train(
        &["--data", "gaussian2d:200", "--steps", "5", "--init", init],
        &bad,
    ));
    assert!(err.contains("--preset or --config"), "{err}");
    assert!(!bad.exists(), "nothing is written");
    let err = failed(train(
        &["--data", "gaussian2d:200", "--resume", "--init", init],
        &ft,
    ));
    assert!(err.contains("--init"));
}

/// `A+B`: joined sources concatenate their samples in order (the first part's samples are
/// the part loaded alone), keep the common value range, and refuse parts of another sample
/// shape (naming it) or an empty part.
#[test]
fn joined_sources_concatenate() {
    let shepp = DataSource::parse("phantom:shepp-logan")
        .unwrap()
        .load_sized(false, Some(32))
        .unwrap();
    let joined = DataSource::parse("phantom:shepp-logan+phantom:ellipses:3+phantom:shepp-logan")
        .unwrap()
        .load_sized(false, Some(32))
        .unwrap();
    assert_eq!(joined.len(), 5);
    assert_eq!(joined.info.shape, vec![1, 32, 32]);
    assert_eq!(joined.info.data_range, shepp.info.data_range);
    assert!(joined.data.get(0).equal(&shepp.data.get(0)));
    assert!(joined.data.get(4).equal(&shepp.data.get(0)));
    assert!(!joined.data.get(1).equal(&shepp.data.get(0)));
    assert!(joined.info.source.contains(" + "), "{}", joined.info.source);

    let e = DataSource::parse("phantom:shepp-logan+gaussian2d:5")
        .unwrap()
        .load(false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("joined data source") && e.contains("[2]"), "{e}");
    let e = DataSource::parse("phantom:shepp-logan+")
        .unwrap_err()
        .to_string();
    assert!(e.contains("part 2") && e.contains("empty"), "{e}");
    let e = DataSource::parse("phantom:shepp-logan+nifti:/no/such.nii.gz")
        .unwrap_err()
        .to_string();
    assert!(e.contains("/no/such.nii.gz"), "{e}");
}

/// `train --data` reads the grammar `--ground-truth` reads (data::spec): ranges of phantoms and
/// of Fashion-MNIST rows select those samples, in order, with their labels; evaluation-only
/// selectors are refused with the reason.
#[test]
fn training_sets_take_the_evaluation_grammar() {
    // Phantoms 2..5 of the training stream are the 3rd to 5th of the first 5.
    let all = DataSource::parse("phantom:ellipses:5")
        .unwrap()
        .load_sized(false, Some(16))
        .unwrap();
    let part = DataSource::parse("phantom:ellipses:2..5")
        .unwrap()
        .load_sized(false, Some(16))
        .unwrap();
    assert_eq!(part.data.size(), vec![3, 1, 16, 16]);
    assert_eq!(
        (part.data - all.data.narrow(0, 2, 3))
            .abs()
            .max()
            .double_value(&[]),
        0.0
    );
    // Test-set rows 10..20 step 5, with their labels (the test set's first labels: 9 2 1 1 6 1 4
    // 6 5 7 | 4 5 7 3 4 1 2 4 8 0).
    let ds = DataSource::parse("fashion-mnist:test:10..20:5")
        .unwrap()
        .load(false)
        .unwrap();
    assert_eq!(ds.data.size(), vec![2, 1, 28, 28]);
    let full = DataSource::parse("fashion-mnist:test")
        .unwrap()
        .load(false)
        .unwrap();
    assert_eq!(
        ds.labels.as_deref(),
        Some(
            &[
                full.labels.as_ref().unwrap()[10],
                full.labels.as_ref().unwrap()[15]
            ][..]
        )
    );
    assert_eq!(
        (ds.data.get(1) - full.data.get(15))
            .abs()
            .max()
            .double_value(&[]),
        0.0
    );
    // Rows past the end, z= and FILE#z= are refused with what they mean.
    let err = DataSource::parse("fashion-mnist:test:9990..10010")
        .unwrap()
        .load(false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("10000"), "{err}");
    let err = DataSource::parse("invesalius:z=66..80")
        .unwrap_err()
        .to_string();
    assert!(err.contains("z=") && err.contains("ground_truth"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("x.npy");
    std::fs::write(&npy, b"").unwrap();
    let err = DataSource::parse(&format!("{}#z=3", npy.display()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("ground_truth"), "{err}");
}
