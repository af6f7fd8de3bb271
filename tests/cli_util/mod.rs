//! Shared by the command-line tests: running the binary, and an untrained tiny prior.
use scoreinv::models::model_dir::DataInfo;
use scoreinv::train::config::preset;
use scoreinv::train::data::Dataset;
use scoreinv::train::Trainer;
use std::path::Path;
use std::process::Command;
use tch::{Device, Kind, Tensor};

/// `scoreinv --device cpu --threads 1 ARGS`.
pub fn scoreinv(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_scoreinv"))
        .args(["--device", "cpu", "--threads", "1"])
        .args(args)
        .output()
        .expect("run scoreinv")
}

/// Standard output and error of a run, together (for messages in assertions).
#[allow(dead_code)]
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// An untrained NCSN++-tiny prior of `channels`-channel 16×16 images in `[0, 1]`.
pub fn tiny_model(dir: &Path, channels: i64) {
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let data = Tensor::rand([4, channels, 16, 16], (Kind::Float, Device::Cpu));
    let info = DataInfo {
        spacing_mm: None,
        shape: vec![channels, 16, 16],
        centered: false,
        data_range: None,
        source: "uniform noise (test)".into(),
    };
    let ds = Dataset::new(data, None, info).unwrap();
    let mut cfg = preset("ncsnpp-tiny").unwrap();
    cfg.training.n_iters = 1;
    let tr = Trainer::new(cfg, &ds, Device::Cpu).unwrap();
    tr.export_model_dir(dir).unwrap();
}
