//! Checkpoints, resume, model directories and divergence handling on a tiny MLP (CPU).

use scoreinv::models::mlp::MlpConfig;
use scoreinv::models::model_dir::{load_model_dir, DataInfo, ModelConfig};
use scoreinv::models::ScoreModel;
use scoreinv::sde::SdeConfig;
use scoreinv::train::checkpoint::{read_checkpoint, CHECKPOINT_JSON};
use scoreinv::train::config::TrainConfig;
use scoreinv::train::data::{Dataset, Gaussian2d};
use scoreinv::train::losses::LossKind;
use scoreinv::train::rng::{Purpose, Stream};
use scoreinv::train::{Event, ScoreMatching, Trainer};
use scoreinv::Error;
use std::path::Path;
use tch::{Device, Kind, Tensor};

fn tiny_config() -> TrainConfig {
    // One intra-op thread keeps these tiny runs cheap on a loaded machine.
    tch::set_num_threads(1);
    let mut c = TrainConfig {
        model: ModelConfig::Mlp(MlpConfig {
            hidden: 32,
            n_layers: 2,
            embed_dim: 8,
            embedding: None,
        }),
        ..Default::default()
    };
    c.sde = SdeConfig::Ve {
        sigma_min: 0.01,
        sigma_max: 10.0,
        n: 1000,
    };
    c.score.scale_by_sigma = true;
    c.optim.lr = 1e-3;
    c.optim.warmup = 5;
    c.optim.ema_rate = 0.9;
    c.training.batch_size = 64;
    c.training.n_iters = 20;
    c.training.log_freq = 5;
    c.training.eval_freq = 10;
    c.training.checkpoint_freq = 10;
    c.data.heldout_fraction = 0.1;
    c
}

/// 100 samples: with batch 64 the 20 steps cross many epoch boundaries.
fn gaussian_data() -> Dataset {
    let x = Gaussian2d::toy().sample(100, 7);
    Dataset::new(x, None, DataInfo::vectors(2, "toy")).unwrap()
}

fn assert_same(a: &[(String, Tensor)], b: &[(String, Tensor)], what: &str) {
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{what} '{na}' differs after resume");
    }
}

fn steps(tr: &mut Trainer, n: usize) -> Vec<f64> {
    (0..n).map(|_| tr.train_step().unwrap().loss).collect()
}

/// 60 random 1×4×4 "images" (so that random flips act).
fn image_data() -> Dataset {
    let x = Stream::new(3, 0, Purpose::Synthetic).normal(&[60, 1, 4, 4], Kind::Float, Device::Cpu);
    let info = DataInfo {
        spacing_mm: None,
        shape: vec![1, 4, 4],
        centered: true,
        data_range: Some((-3.0, 3.0)),
        source: "noise images".into(),
    };
    Dataset::new(x, None, info).unwrap()
}

fn resume_is_bit_exact(mut cfg: TrainConfig, data: Dataset) {
    cfg.data.random_flip = true;
    let d0 = tempfile::tempdir().unwrap();
    let d1 = tempfile::tempdir().unwrap();
    let mut a = Trainer::new(cfg.clone(), &data, Device::Cpu).unwrap();
    a.save_checkpoint(d0.path()).unwrap();
    let la = steps(&mut a, 20);

    let mut b = Trainer::<ScoreMatching>::resume(d0.path(), &data, Device::Cpu, |_| {}).unwrap();
    let mut lb = steps(&mut b, 10);
    b.save_checkpoint(d1.path()).unwrap();
    drop(b);
    let mut b = Trainer::<ScoreMatching>::resume(d1.path(), &data, Device::Cpu, |_| {}).unwrap();
    assert_eq!(b.step_count(), 10);
    lb.extend(steps(&mut b, 10));
    assert_eq!(la, lb, "loss sequences differ");
    assert_same(&a.weights(), &b.weights(), "weight");
    assert_same(&a.ema_weights(), &b.ema_weights(), "EMA weight");
    // Adam moments too: the next step would differ otherwise.
    assert_eq!(steps(&mut a, 1), steps(&mut b, 1));
    assert_same(&a.weights(), &b.weights(), "weight (step 21)");
}

#[test]
fn resume_dsm_is_bit_exact() {
    resume_is_bit_exact(tiny_config(), gaussian_data());
}

#[test]
fn resume_images_with_flips_is_bit_exact() {
    resume_is_bit_exact(tiny_config(), image_data());
}

#[test]
fn resume_images_with_random_contrast_is_bit_exact() {
    let mut c = tiny_config();
    c.data.random_contrast = 0.5;
    resume_is_bit_exact(c.clone(), image_data());
    // The augmentation acts: the same run without it takes other losses.
    let data = image_data();
    let mut with = Trainer::new(c.clone(), &data, Device::Cpu).unwrap();
    // The exported model says it was trained so.
    let dir = tempfile::tempdir().unwrap();
    with.export_model_dir(&dir.path().join("m")).unwrap();
    let (_, _, mcfg) = load_model_dir(&dir.path().join("m"), Device::Cpu).unwrap();
    assert_eq!(mcfg.training.and_then(|t| t.random_contrast), Some(0.5));
    c.data.random_contrast = 0.0;
    let mut without = Trainer::new(c, &data, Device::Cpu).unwrap();
    assert_ne!(steps(&mut with, 3), steps(&mut without, 3));
}

#[test]
fn resume_ssm_is_bit_exact() {
    let mut c = tiny_config();
    c.loss.kind = LossKind::Ssm;
    resume_is_bit_exact(c, gaussian_data());
}

/// Byte range of `name`'s data in a safetensors file.
fn data_range(bytes: &[u8], name: &str) -> (usize, usize) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let off = header[name]["data_offsets"].as_array().unwrap();
    (
        8 + n + off[0].as_u64().unwrap() as usize,
        8 + n + off[1].as_u64().unwrap() as usize,
    )
}

fn tensor_file(dir: &Path) -> std::path::PathBuf {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(CHECKPOINT_JSON)).unwrap()).unwrap();
    dir.join(meta["tensors"].as_str().unwrap())
}

#[test]
fn corrupted_tensor_is_named() {
    let data = gaussian_data();
    let dir = tempfile::tempdir().unwrap();
    let mut tr = Trainer::new(tiny_config(), &data, Device::Cpu).unwrap();
    steps(&mut tr, 3);
    tr.save_checkpoint(dir.path()).unwrap();
    let path = tensor_file(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let (lo, hi) = data_range(&bytes, "ema/output.weight");
    let mid = (lo + hi) / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let err = Trainer::<ScoreMatching>::resume(dir.path(), &data, Device::Cpu, |_| {})
        .err()
        .expect("a corrupted checkpoint must not load")
        .to_string();
    assert!(
        err.contains("ema/output.weight") && err.contains("corrupted"),
        "{err}"
    );
    // A truncated file is refused as a whole.
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = Trainer::<ScoreMatching>::resume(dir.path(), &data, Device::Cpu, |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains(path.file_name().unwrap().to_str().unwrap()),
        "{err}"
    );
}

#[test]
fn missing_tensor_is_named() {
    let data = gaussian_data();
    let dir = tempfile::tempdir().unwrap();
    let tr = Trainer::new(tiny_config(), &data, Device::Cpu).unwrap();
    tr.save_checkpoint(dir.path()).unwrap();
    let path = tensor_file(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "adam_v/input.bias")
        .collect();
    assert_eq!(kept.len() + 1, st.len());
    let out = safetensors::serialize(kept, meta.metadata()).unwrap();
    std::fs::write(&path, out).unwrap();
    let err = Trainer::<ScoreMatching>::resume(dir.path(), &data, Device::Cpu, |_| {})
        .err()
        .expect("a checkpoint without a tensor must not load")
        .to_string();
    assert!(
        err.contains("adam_v/input.bias") && err.contains("missing"),
        "{err}"
    );
    // Missing JSON.
    std::fs::remove_file(dir.path().join(CHECKPOINT_JSON)).unwrap();
    let err = Trainer::<ScoreMatching>::resume(dir.path(), &data, Device::Cpu, |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains(CHECKPOINT_JSON), "{err}");
}

#[test]
fn resume_refuses_data_of_another_shape() {
    let data = gaussian_data();
    let dir = tempfile::tempdir().unwrap();
    Trainer::new(tiny_config(), &data, Device::Cpu)
        .unwrap()
        .save_checkpoint(dir.path())
        .unwrap();
    let other = Dataset::new(
        Tensor::zeros([10, 3], tch::kind::FLOAT_CPU),
        None,
        DataInfo::vectors(3, "3-D"),
    )
    .unwrap();
    let err = Trainer::<ScoreMatching>::resume(dir.path(), &other, Device::Cpu, |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("[2]") && err.contains("[3]"), "{err}");
}

#[test]
fn model_dir_round_trip_and_errors() {
    let data = gaussian_data();
    let dir = tempfile::tempdir().unwrap();
    let mut tr = Trainer::new(tiny_config(), &data, Device::Cpu).unwrap();
    steps(&mut tr, 5);
    let mdir = dir.path().join("model");
    tr.export_model_dir(&mdir).unwrap();
    let (model, sde, cfg) = load_model_dir(&mdir, Device::Cpu).unwrap();
    assert_eq!(sde, tr.config().sde);
    assert_eq!(cfg.data.shape, vec![2]);
    assert_eq!(model.sample_shape(), Some(vec![2]));
    // The loaded model is the EMA model: identical scores.
    tr.load_ema_into_model();
    let x = Gaussian2d::toy().sample(16, 3);
    let t = Tensor::linspace(0.01, 1.0, 16, tch::kind::FLOAT_CPU);
    let want = tch::no_grad(|| tr.model().score(&x, &t));
    let got = tch::no_grad(|| model.score(&x, &t));
    assert!(got.equal(&want));

    // Missing tensor, missing weights file, missing config: each error names it.
    let w = mdir.join("model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<_> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "output.weight")
        .collect();
    std::fs::write(&w, safetensors::serialize(kept, &None).unwrap()).unwrap();
    let err = load_model_dir(&mdir, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("output.weight") && err.contains("missing"),
        "{err}"
    );
    std::fs::remove_file(&w).unwrap();
    let err = load_model_dir(&mdir, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");
    std::fs::remove_file(mdir.join("config.json")).unwrap();
    let err = load_model_dir(&mdir, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("config.json"), "{err}");
    let err = load_model_dir(&dir.path().join("nope"), Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("nope") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn divergence_stops_and_keeps_last_good_checkpoint() {
    // lr 1e12 without warm-up: Adam moves every weight by ~1e12 per step, the 2-layer MLP's
    // output overflows f32 within a few steps, and the loss becomes inf/NaN.
    let mut cfg = tiny_config();
    cfg.optim.lr = 1e12;
    cfg.optim.warmup = 0;
    cfg.training.checkpoint_freq = 1;
    cfg.training.eval_freq = 0;
    cfg.training.n_iters = 50;
    let data = gaussian_data();
    let dir = tempfile::tempdir().unwrap();
    let mut tr = Trainer::new(cfg, &data, Device::Cpu).unwrap();
    let mut ckpts = vec![];
    let err = tr
        .run(dir.path(), &mut |e| {
            if let Event::Checkpoint { step, .. } = e {
                ckpts.push(*step)
            }
        })
        .expect_err("training with lr 1e12 must diverge");
    let msg = err.to_string();
    assert!(matches!(err, Error::Diverged(_)), "{msg}");
    assert!(
        msg.contains("diverged at step") && msg.contains("last good checkpoint"),
        "{msg}"
    );
    let diverged_at = tr.step_count() + 1;
    assert!(diverged_at < 50, "{msg}");
    // The checkpoint on disk is the last completed step, and it loads (all tensors finite).
    let (meta, _) = read_checkpoint(dir.path()).unwrap();
    assert_eq!(meta.step, diverged_at - 1);
    assert_eq!(ckpts.last().copied().unwrap_or(0), meta.step);
    assert!(msg.contains(&format!("(step {})", meta.step)), "{msg}");
    Trainer::<ScoreMatching>::resume(dir.path(), &data, Device::Cpu, |_| {}).unwrap();
    assert!(
        !dir.path().join("model").exists(),
        "no model is exported from a diverged run"
    );
}

#[test]
fn nan_data_is_refused_before_training() {
    let x = Gaussian2d::toy().sample(10, 1);
    let _ = x.get(4).get(1).fill_(f64::NAN);
    let err = Dataset::new(x, None, DataInfo::vectors(2, "poisoned")).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("poisoned") && msg.contains("sample 4") && msg.contains("NaN"),
        "{msg}"
    );
}

#[test]
fn discrete_losses_train_and_check_their_sde() {
    // NCSN needs VE and DDPM needs VP: the wrong pairing is refused before training.
    let data = gaussian_data();
    for (kind, sde) in [
        (LossKind::Ncsn, SdeConfig::vp_default()),
        (LossKind::Ddpm, SdeConfig::ve_default()),
    ] {
        let mut c = tiny_config();
        c.loss.kind = kind;
        c.sde = sde;
        let err = Trainer::new(c, &data, Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("needs a"), "{err}");
    }
    // The right pairing trains: over 150 steps the mean loss of the last 30 steps is below that
    // of the first 30 (each loss is an unbiased estimate of the objective; the untrained network
    // is far from the minimum).
    for (kind, sde) in [
        (
            LossKind::Ncsn,
            SdeConfig::Ve {
                sigma_min: 0.01,
                sigma_max: 10.0,
                n: 1000,
            },
        ),
        (LossKind::Ddpm, SdeConfig::vp_default()),
    ] {
        let mut c = tiny_config();
        c.loss.kind = kind;
        c.loss.reduce_mean = kind == LossKind::Ddpm;
        c.sde = sde;
        let mut tr = Trainer::new(c, &data, Device::Cpu).unwrap();
        let l = steps(&mut tr, 150);
        let first: f64 = l[..30].iter().sum::<f64>() / 30.0;
        let last: f64 = l[120..].iter().sum::<f64>() / 30.0;
        assert!(last < 0.8 * first, "{kind:?}: loss {first} -> {last}");
    }
}

/// Periodic sample grids (score_sde's snapshot sampling, with the EMA weights) do not perturb
/// training: `run` with a grid every 5 steps ends on exactly the weights of 20 plain steps, and
/// writes `samples/step_NNNNNNN.{png,npy}` at steps 5, 10, 15, 20 with `sample_n` finite
/// samples of the data's shape.
#[test]
fn sample_grids_leave_training_bit_exact() {
    let mut cfg = tiny_config();
    cfg.data.random_flip = true;
    cfg.training.sample_freq = 5;
    cfg.training.sample_n = 4;
    cfg.training.sample_steps = Some(10);
    let data = image_data();
    let mut a = Trainer::new(cfg.clone(), &data, Device::Cpu).unwrap();
    steps(&mut a, 20);
    let dir = tempfile::tempdir().unwrap();
    let mut b = Trainer::new(cfg, &data, Device::Cpu).unwrap();
    let mut seen = Vec::new();
    b.run(dir.path(), &mut |e| {
        if let Event::Samples { step, path } = e {
            seen.push((*step, path.clone()));
        }
    })
    .unwrap();
    assert_same(&a.weights(), &b.weights(), "weight");
    assert_same(&a.ema_weights(), &b.ema_weights(), "EMA weight");
    assert_eq!(
        seen.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![5, 10, 15, 20]
    );
    for (step, png) in &seen {
        assert_eq!(
            png,
            &dir.path().join(format!("samples/step_{step:07}.png")),
            "grid path"
        );
        assert!(png.is_file(), "{} missing", png.display());
        let x: ndarray::ArrayD<f32> = ndarray_npy::read_npy(png.with_extension("npy")).unwrap();
        assert_eq!(x.shape(), &[4, 1, 4, 4]);
        assert!(x.iter().all(|v| v.is_finite()));
    }
}

/// Vector (2-D toy) data has no picture: the samples are written as NPY only.
#[test]
fn sample_grids_of_vector_data_are_npy() {
    let mut cfg = tiny_config();
    cfg.training.n_iters = 5;
    cfg.training.sample_freq = 5;
    cfg.training.sample_n = 3;
    cfg.training.sample_steps = Some(5);
    let dir = tempfile::tempdir().unwrap();
    let mut t = Trainer::new(cfg, &gaussian_data(), Device::Cpu).unwrap();
    let mut seen = Vec::new();
    t.run(dir.path(), &mut |e| {
        if let Event::Samples { path, .. } = e {
            seen.push(path.clone());
        }
    })
    .unwrap();
    assert_eq!(seen, vec![dir.path().join("samples/step_0000005.npy")]);
    let x: ndarray::ArrayD<f32> = ndarray_npy::read_npy(&seen[0]).unwrap();
    assert_eq!(x.shape(), &[3, 2]);
    assert!(!dir.path().join("samples/step_0000005.png").exists());
}

/// A sample grid that cannot be written (here `samples` is a file, not a folder) is reported
/// and training goes on to the end, on the same weights as without grids.
#[test]
fn failed_sample_grid_does_not_stop_training() {
    let mut cfg = tiny_config();
    cfg.training.n_iters = 10;
    cfg.training.sample_freq = 5;
    cfg.training.sample_n = 2;
    cfg.training.sample_steps = Some(5);
    let data = image_data();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("samples"), b"not a folder").unwrap();
    let mut t = Trainer::new(cfg.clone(), &data, Device::Cpu).unwrap();
    let mut failed = Vec::new();
    let summary = t
        .run(dir.path(), &mut |e| {
            if let Event::SamplesFailed { step, error } = e {
                failed.push((*step, error.clone()));
            }
        })
        .unwrap();
    assert_eq!(summary.final_step, 10);
    assert_eq!(failed.iter().map(|f| f.0).collect::<Vec<_>>(), vec![5, 10]);
    assert!(failed[0].1.contains("samples"), "{}", failed[0].1);
    let mut plain = Trainer::new(cfg, &data, Device::Cpu).unwrap();
    steps(&mut plain, 10);
    assert_same(&plain.weights(), &t.weights(), "weight");
}

/// The default flat buffers (`optim.flat_buffers`) train the same network as the per-tensor
/// optimiser: same losses, weights and EMA to within the rounding of the summed gradient norm.
#[test]
fn flat_buffers_follow_the_per_tensor_trajectory() {
    let data = image_data();
    let mut cfg = tiny_config();
    cfg.data.random_flip = true;
    cfg.optim.grad_clip = 0.5; // active: the clipped norm is where the paths may round apart
    let mut per_tensor = cfg.clone();
    per_tensor.optim.flat_buffers = false;
    assert!(cfg.optim.flat_buffers, "flat buffers are the default");
    let mut a = Trainer::new(cfg, &data, Device::Cpu).unwrap();
    let mut b = Trainer::new(per_tensor, &data, Device::Cpu).unwrap();
    let (la, lb) = (steps(&mut a, 12), steps(&mut b, 12));
    assert!(a.flat_buffers_active() && !b.flat_buffers_active());
    for (x, y) in la.iter().zip(&lb) {
        assert!((x - y).abs() <= 1e-4 * y.abs().max(1.0), "loss {x} vs {y}");
    }
    for (what, wa, wb) in [
        ("weight", a.weights(), b.weights()),
        ("EMA weight", a.ema_weights(), b.ema_weights()),
    ] {
        for ((n, ta), (_, tb)) in wa.iter().zip(&wb) {
            let d = (ta - tb).abs().max().double_value(&[]);
            assert!(d <= 1e-5, "{what} '{n}' differs by {d}");
        }
    }
}

/// `set_heldout` (the CLI's `--heldout-data`): the held-out loss is measured on the given data —
/// a shifted copy of the data scores worse than the data itself, with the same weights — and a
/// set of another sample shape is refused, naming it.
#[test]
fn separate_heldout_data() {
    let mut cfg = tiny_config();
    cfg.data.heldout_fraction = 0.0;
    let data = gaussian_data();
    let mut tr = Trainer::new(cfg, &data, Device::Cpu).unwrap();
    assert!(
        tr.heldout_loss().unwrap().is_none(),
        "no split, nothing held out yet"
    );
    steps(&mut tr, 20);
    let same = Gaussian2d::toy().sample(400, 99);
    tr.set_heldout(Dataset::new(same.shallow_clone(), None, DataInfo::vectors(2, "same")).unwrap())
        .unwrap();
    let l_same = tr.heldout_loss().unwrap().unwrap();
    tr.set_heldout(Dataset::new(same + 5.0, None, DataInfo::vectors(2, "shifted")).unwrap())
        .unwrap();
    let l_shift = tr.heldout_loss().unwrap().unwrap();
    assert!(l_shift > l_same, "shifted {l_shift} vs same {l_same}");
    let wrong = Dataset::new(
        Tensor::zeros([4, 3], (Kind::Float, Device::Cpu)),
        None,
        DataInfo::vectors(3, "three-d"),
    )
    .unwrap();
    let e = tr.set_heldout(wrong).unwrap_err().to_string();
    assert!(e.contains("three-d"), "{e}");
}

/// `Trainer::fine_tune` (the CLI's `train --init`): a new run whose network, SDE and score
/// options are the model directory's (the given config's are replaced), whose trained and EMA
/// weights start at the model's, and which records where it came from; it then learns the new
/// data (its DSM loss on a shifted copy of the data falls) and resumes bit-exactly; data of
/// another sample shape or value range is refused, naming it.
#[test]
fn fine_tune_starts_from_a_model_dir() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    let cfg = tiny_config();
    let data = gaussian_data();
    let mut base = Trainer::new(cfg.clone(), &data, Device::Cpu).unwrap();
    steps(&mut base, 10);
    base.export_model_dir(&model_dir).unwrap();
    let start = base.ema_weights();

    let mut other = tiny_config();
    other.model = ModelConfig::Mlp(MlpConfig {
        hidden: 16,
        n_layers: 3,
        embed_dim: 4,
        embedding: None,
    });
    other.data.heldout_fraction = 0.0;
    other.training.n_iters = 40;
    let shifted = Dataset::new(
        Gaussian2d::toy().sample(100, 8) + 3.0,
        None,
        DataInfo::vectors(2, "shifted"),
    )
    .unwrap();
    let mut ft = Trainer::fine_tune(&model_dir, other.clone(), &shifted, Device::Cpu).unwrap();
    assert_eq!(
        ft.config().model,
        cfg.model,
        "the model directory's network is used"
    );
    assert_eq!(ft.config().sde, cfg.sde);
    assert_eq!(
        ft.config().training.init.as_deref(),
        Some(model_dir.display().to_string().as_str())
    );
    assert_eq!(ft.step_count(), 0);
    assert_same(&ft.weights(), &start, "weight");
    assert_same(&ft.ema_weights(), &start, "EMA weight");

    // It learns the shifted data: the held-out DSM loss on it falls over 40 steps.
    let held = Gaussian2d::toy().sample(400, 9) + 3.0;
    ft.set_heldout(Dataset::new(held, None, DataInfo::vectors(2, "held")).unwrap())
        .unwrap();
    let before = ft.heldout_loss().unwrap().unwrap();
    let run = dir.path().join("run");
    let mut a = Trainer::fine_tune(&model_dir, other.clone(), &shifted, Device::Cpu).unwrap();
    a.save_checkpoint(&run).unwrap();
    steps(&mut ft, 40);
    let after = ft.heldout_loss().unwrap().unwrap();
    assert!(after < 0.9 * before, "held-out loss {before} → {after}");

    // Resume of a fine-tuning run: bit-exact, and the checkpoint keeps the provenance.
    steps(&mut a, 20);
    a.save_checkpoint(&run).unwrap();
    let mut b = Trainer::<ScoreMatching>::resume(&run, &shifted, Device::Cpu, |_| {}).unwrap();
    assert_eq!(b.config().training.init, ft.config().training.init);
    steps(&mut b, 20);
    assert_same(&ft.weights(), &b.weights(), "weight after resume");
    assert_same(
        &ft.ema_weights(),
        &b.ema_weights(),
        "EMA weight after resume",
    );
    b.export_model_dir(&dir.path().join("ft-model")).unwrap();
    let (_, _, mcfg) = load_model_dir(&dir.path().join("ft-model"), Device::Cpu).unwrap();
    assert_eq!(
        mcfg.training.and_then(|t| t.init),
        Some(model_dir.display().to_string())
    );

    // Data the model was not trained for.
    let three = Dataset::new(
        Tensor::zeros([8, 3], (Kind::Float, Device::Cpu)),
        None,
        DataInfo::vectors(3, "three-d"),
    )
    .unwrap();
    let e = Trainer::fine_tune(&model_dir, other.clone(), &three, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("three-d") && e.contains("sample shape"), "{e}");
    let mut info = DataInfo::vectors(2, "bytes");
    info.data_range = Some((0.0, 255.0));
    let ranged = Dataset::new(Gaussian2d::toy().sample(10, 1), None, info).unwrap();
    let e = Trainer::fine_tune(&model_dir, other.clone(), &ranged, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("value range") && e.contains("255"), "{e}");
    let e = Trainer::fine_tune(&dir.path().join("missing"), other, &shifted, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("missing") && e.contains("does not exist"), "{e}");
}

/// Run folders written before the score and classifier trainers became one `Trainer` still
/// resume: each kind commits its checkpoint in the JSON file it always did, with the same keys
/// (`n_classes` only for classifiers), and resumes from it.
#[test]
fn checkpoint_json_keeps_the_layout_of_earlier_runs() {
    use scoreinv::guidance::train::{
        classifier_preset, mixture_dataset, toy_mixture, ClassifierTrainer,
        CLASSIFIER_CHECKPOINT_JSON,
    };
    let keys = |path: &Path| -> Vec<String> {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let mut score_keys = vec![
        "config",
        "data",
        "ema_num_updates",
        "format",
        "last_loss",
        "seed",
        "step",
        "tensors",
    ];
    let dir = tempfile::tempdir().unwrap();
    let data = gaussian_data();
    let mut tr = Trainer::new(tiny_config(), &data, Device::Cpu).unwrap();
    steps(&mut tr, 2);
    let json = tr.save_checkpoint(dir.path()).unwrap();
    assert_eq!(json, dir.path().join(CHECKPOINT_JSON));
    assert_eq!(keys(&json), score_keys);
    assert_eq!(read_checkpoint(dir.path()).unwrap().0.n_classes, None);
    assert!(dir.path().join("ckpt-00000002.safetensors").is_file());
    Trainer::<ScoreMatching>::resume(dir.path(), &data, Device::Cpu, |_| {}).unwrap();

    let cdir = tempfile::tempdir().unwrap();
    let labelled = mixture_dataset(&toy_mixture(), 200, 0).unwrap();
    let mut ccfg = classifier_preset("toy2d").unwrap();
    ccfg.batch_size = 32;
    let mut clf = ClassifierTrainer::new(ccfg, &labelled, Device::Cpu).unwrap();
    clf.train_step().unwrap();
    let json = clf.save_checkpoint(cdir.path()).unwrap();
    assert_eq!(json, cdir.path().join(CLASSIFIER_CHECKPOINT_JSON));
    score_keys.insert(5, "n_classes");
    assert_eq!(keys(&json), score_keys);
    assert!(cdir
        .path()
        .join("classifier-ckpt-00000001.safetensors")
        .is_file());
    let resumed = ClassifierTrainer::resume(cdir.path(), &labelled, Device::Cpu, |_| {}).unwrap();
    assert_eq!((resumed.step_count(), resumed.n_classes()), (1, 3));
}
