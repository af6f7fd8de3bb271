//! Parity of the NCSN++ / DDPM++ port with score_sde_pytorch (commit cb1f359).
//!
//! Every `NAME.json` + `NAME.safetensors` pair in a fixture directory holds a config
//! (`json.config`, score_sde_pytorch's `config` as JSON), the network's `state_dict`, an input
//! batch `input.x`, `input.time_cond` and the PyTorch output `output.score`. The port is built
//! from the config, loaded by name, run in eval mode, and compared per sample:
//! `max|port_b − ref_b| ≤ 1e-4 · max|ref_b|` (`json.tolerance`; PyTorch's own float32 vs float64
//! runs of the same weights differ by ≲ 1.5e-5 of that scale, and typical porting mistakes by
//! 1e-2 to 1).
//!
//! Directories:
//! * shared fixtures (`shared_fixtures`): `$SCOREINV_PARITY_DIR`, else
//!   `<repo>/../shared/fixtures/score_sde_parity` (the repository's parent holds `shared/`).
//!   They are described in that directory's README.md.
//! * family fixtures (`family_fixtures`): `tests/fixtures/score_sde_family/`, committed. They
//!   were generated once (not in CI: it needs the upstream source) from the upstream repository
//!   `yang-song/score_sde_pytorch` at cb1f359, extracted OUTSIDE this repository
//!   (`/tmp/score_sde`), with `op/__init__.py` edited not to build the CUDA extensions (CPU runs
//!   the pure-PyTorch `upfirdn2d_native`) and two upstream bugs patched in that scratch copy only:
//!   `layerspp.Upsample` (fir=False) calls `F.interpolate(x, size, 'nearest')` (third positional
//!   argument is scale_factor; fixed to `mode='nearest'`), and `upsample_conv_2d` flips the
//!   weight with `w[..., ::-1, ::-1]` (negative slice steps are rejected by PyTorch; fixed to
//!   `torch.flip(w, (3, 4))`). The generator is documented in each JSON's `source` and
//!   `generator` fields: torch 2.11 CPU float32, one thread, deterministic algorithms;
//!   `torch.manual_seed(seed)`, `NCSNpp(config)`, every state_dict entry except `sigmas`
//!   `+= 0.05·randn`, eval mode, `output.score = model(input.x, input.time_cond)`.
//!
//! A directory with no fixture is a failure, not a skip. Runs with one libtorch thread for
//! determinism. Each fixture is also run in float64 (weights and inputs cast) as a check that the
//! float32 error is rounding, not structure.

use scoreinv::models::config::ScoreSdeConfig;
use scoreinv::models::ncsnpp::{load_safetensors, Ncsnpp};
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Device, Kind, Tensor};

fn shared_dir() -> PathBuf {
    match std::env::var_os("SCOREINV_PARITY_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/score_sde_parity"),
    }
}

fn family_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/score_sde_family")
}

/// `(name, json, safetensors)` for every complete pair in `dir`.
fn fixtures(dir: &Path) -> Vec<(String, PathBuf, PathBuf)> {
    let rd = std::fs::read_dir(dir).unwrap_or_else(|e| {
        panic!(
            "parity fixture directory {} is not readable ({e}); set SCOREINV_PARITY_DIR or \
             place shared/fixtures/score_sde_parity beside the repository",
            dir.display()
        )
    });
    let mut out: Vec<_> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|j| {
            let s = j.with_extension("safetensors");
            s.exists().then(|| {
                let name = j.file_stem().unwrap().to_string_lossy().into_owned();
                (name, j, s)
            })
        })
        .collect();
    out.sort();
    assert!(
        !out.is_empty(),
        "no NAME.json + NAME.safetensors fixture pair in {}",
        dir.display()
    );
    out
}

/// Worst per-sample relative error `max_b max|port_b − ref_b| / max|ref_b|`.
fn worst_rel(port: &Tensor, reference: &Tensor) -> f64 {
    let b = reference.size()[0];
    let p = port.to_kind(Kind::Double).reshape([b, -1]);
    let r = reference.to_kind(Kind::Double).reshape([b, -1]);
    let err = (p - &r).abs().amax(1, false);
    let scale = r.abs().amax(1, false);
    (err / scale).max().double_value(&[])
}

struct Outcome {
    rel_f32: f64,
    rel_f64: f64,
    tol: f64,
}

fn run_fixture(json: &Path, st: &Path) -> Outcome {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let cfg = ScoreSdeConfig::from_json_value(&meta["config"])
        .unwrap_or_else(|e| panic!("{}: config: {e}", json.display()));
    // Tolerance rule of the fixture: max|port_b − ref_b| ≤ 1e-4 · max|ref_b|.
    let rule = meta["tolerance"]["rule"].as_str().unwrap_or("");
    assert!(rule.contains("1e-4"), "unexpected tolerance rule: {rule}");
    let tol = 1e-4;
    let tensors: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(st).unwrap().into_iter().collect();
    let x = &tensors["input.x"];
    let c = &tensors["input.time_cond"];
    let want = &tensors["output.score"];

    let vs = VarStore::new(Device::Cpu);
    let net = Ncsnpp::new(&vs.root(), &cfg).unwrap();
    load_safetensors(&vs, st).unwrap();
    let got = tch::no_grad(|| net.forward(x, c, false)).unwrap();
    assert_eq!(got.size(), want.size());
    let rel_f32 = worst_rel(&got, want);

    let mut vs64 = VarStore::new(Device::Cpu);
    vs64.set_kind(Kind::Double);
    let net64 = Ncsnpp::new(&vs64.root(), &cfg).unwrap();
    load_safetensors(&vs64, st).unwrap();
    let got64 =
        tch::no_grad(|| net64.forward(&x.to_kind(Kind::Double), &c.to_kind(Kind::Double), false))
            .unwrap();
    assert_eq!(got64.kind(), Kind::Double);
    let rel_f64 = worst_rel(&got64, want);
    Outcome {
        rel_f32,
        rel_f64,
        tol,
    }
}

fn check_dir(dir: &Path) {
    tch::set_num_threads(1);
    let mut failures = Vec::new();
    for (name, json, st) in fixtures(dir) {
        let o = run_fixture(&json, &st);
        println!(
            "{name}: worst per-sample relative error f32 {:.3e}, f64 {:.3e} (tolerance {:.0e})",
            o.rel_f32, o.rel_f64, o.tol
        );
        if !(o.rel_f32 <= o.tol && o.rel_f64 <= o.tol) {
            failures.push(name);
        }
    }
    assert!(failures.is_empty(), "parity failures: {failures:?}");
}

#[test]
fn shared_fixtures() {
    check_dir(&shared_dir());
}

#[test]
fn family_fixtures() {
    check_dir(&family_dir());
}
