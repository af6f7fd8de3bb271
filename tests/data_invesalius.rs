//! The InVesalius reader against the real file (Debian `invesalius-examples`, installed by
//! `scripts/setup`) and against corrupt input.
use scoreinv::data::invesalius::{read_inv3, CRANIUM_INV3};
use std::path::Path;

#[test]
fn reads_cranium_when_installed() {
    let p = Path::new(CRANIUM_INV3);
    assert!(
        p.exists(),
        "{CRANIUM_INV3} absent: run scripts/setup (Debian invesalius-examples)"
    );
    let v = read_inv3(p).unwrap();
    assert_eq!(v.hu.shape(), &[108, 256, 256]);
    // Air is about -1000 HU and bone reaches well above +1000 HU in a head CT.
    let min = v.hu.iter().cloned().fold(f32::INFINITY, f32::min);
    let max = v.hu.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    assert!(min <= -900.0, "min HU {min}");
    assert!(max >= 1000.0, "max HU {max}");
    assert!((v.spacing_mm[1] - 0.957).abs() < 1e-3, "{:?}", v.spacing_mm);
}

#[test]
fn corrupt_inv3_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("broken.inv3");
    std::fs::write(&p, b"this is not a gzip archive").unwrap();
    let e = read_inv3(&p).unwrap_err().to_string();
    assert!(e.contains("broken.inv3"), "{e}");
    let missing = dir.path().join("missing.inv3");
    let e = read_inv3(&missing).unwrap_err().to_string();
    assert!(e.contains("missing.inv3"), "{e}");
}
