//! Fuzzing the readers of files a user gives: NPY, NIfTI (`.nii`, `.nii.gz`), DICOM, PNG/JPEG,
//! TIFF, IDX, safetensors and model directories (`config.json` + `model.safetensors`).
//!
//! Property: whatever the bytes, a reader returns `Ok` or `Err`; it never panics (proptest
//! reports the panic and shrinks the input) and never aborts (an abort kills this test binary:
//! also a failure). Inputs are random bytes, mutations of valid seed files written by the
//! project's own writers (bit flips, byte and word overwrites with boundary values, truncation,
//! insertion, deletion) with a bias towards the header, and structured edits of the sizes a
//! header declares (NPY shapes, NIfTI dims/datatype/vox_offset/scl/pixdim, DICOM Rows/Columns/
//! frames/bits with compressed transfer syntaxes, PNG IHDR, TIFF IFD entries, IDX dims,
//! safetensors shapes and offsets, model config values).
//!
//! The memory budget is set to 64 MiB here, so that a declared size never makes a case slow.
//! Cases per property default to a count that runs the whole file in well under a minute in
//! the test profile; `SCOREINV_FUZZ_CASES=N` runs N per property (e.g. 20000 for a long run).
//! Panics that a reader catches inside third-party decoders (and turns into errors) are
//! counted and printed, not failed.
use ndarray::{Array, Array2, Array3, IxDyn};
use num_complex::Complex;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use scoreinv::io;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

/// Memory budget of every case.
const BUDGET: u64 = 64 << 20;

static CAUGHT: Mutex<Vec<String>> = Mutex::new(Vec::new());
static SETUP: Once = Once::new();

/// Sets the budget and a panic hook that records every panic (and still prints it).
fn setup() {
    SETUP.call_once(|| {
        io::budget::set_budget_override(Some(BUDGET));
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let loc = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            if let Ok(mut c) = CAUGHT.lock() {
                c.push(loc);
            }
            default(info);
        }));
    });
}

/// Cases per property: `default`, or `SCOREINV_FUZZ_CASES`.
fn cases(default: u32) -> u32 {
    std::env::var("SCOREINV_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `check` on `cases(default)` values of `strategy`; a panic fails with the shrunk input.
fn fuzz<S: Strategy>(name: &str, default: u32, strategy: S, check: impl Fn(S::Value))
where
    S::Value: std::fmt::Debug,
{
    setup();
    let before = CAUGHT.lock().map(|c| c.len()).unwrap_or(0);
    let config = Config {
        cases: cases(default),
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    };
    let t0 = std::time::Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |v| {
        check(v);
        Ok::<(), TestCaseError>(())
    });
    if let Err(e) = result {
        panic!("{name}: a reader panicked: {e}");
    }
    let caught: Vec<String> = CAUGHT
        .lock()
        .map(|c| c[before.min(c.len())..].to_vec())
        .unwrap_or_default();
    let mut distinct = caught.clone();
    distinct.sort();
    distinct.dedup();
    eprintln!(
        "{name}: {} cases in {:.1} s; {} panic(s) caught inside readers {distinct:?}",
        cases(default),
        t0.elapsed().as_secs_f64(),
        caught.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Mutations

#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: Index,
        bit: u8,
        head: bool,
    },
    Byte {
        at: Index,
        value: u8,
        head: bool,
    },
    Word {
        at: Index,
        value: u32,
        wide: bool,
        big: bool,
        head: bool,
    },
    Truncate {
        at: Index,
    },
    Insert {
        at: Index,
        bytes: Vec<u8>,
    },
    Delete {
        at: Index,
        len: u8,
    },
}

/// Boundary values for sizes and offsets.
fn interesting_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(2),
        Just(3),
        Just(4),
        Just(0x7F),
        Just(0x80),
        Just(0xFF),
        Just(0x100),
        Just(0x7FFF),
        Just(0x8000),
        Just(0xFFFF),
        Just(0x1_0000),
        Just(0x7FFF_FFFF),
        Just(0x8000_0000),
        Just(0xFFFF_FFFE),
        Just(0xFFFF_FFFF),
        0u32..512,
        any::<u32>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), 0u8..8, any::<bool>())
            .prop_map(|(at, bit, head)| Mutation::Flip { at, bit, head }),
        2 => (any::<Index>(), any::<u8>(), any::<bool>())
            .prop_map(|(at, value, head)| Mutation::Byte { at, value, head }),
        3 => (any::<Index>(), interesting_u32(), any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(at, value, wide, big, head)| Mutation::Word { at, value, wide, big, head }),
        1 => any::<Index>().prop_map(|at| Mutation::Truncate { at }),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (any::<Index>(), 1u8..64).prop_map(|(at, len)| Mutation::Delete { at, len }),
    ]
}

/// Applies `m`; `head` mutations land in the first `head_len` bytes (the header).
fn apply(b: &mut Vec<u8>, m: &Mutation, head_len: usize) {
    if b.is_empty() {
        return;
    }
    let pos = |at: &Index, head: bool| {
        let n = if head {
            head_len.clamp(1, b.len())
        } else {
            b.len()
        };
        at.index(n)
    };
    match m {
        Mutation::Flip { at, bit, head } => {
            let p = pos(at, *head);
            b[p] ^= 1 << bit;
        }
        Mutation::Byte { at, value, head } => {
            let p = pos(at, *head);
            b[p] = *value;
        }
        Mutation::Word {
            at,
            value,
            wide,
            big,
            head,
        } => {
            let p = pos(at, *head);
            let bytes: Vec<u8> = match (wide, big) {
                (true, false) => value.to_le_bytes().to_vec(),
                (true, true) => value.to_be_bytes().to_vec(),
                (false, false) => (*value as u16).to_le_bytes().to_vec(),
                (false, true) => (*value as u16).to_be_bytes().to_vec(),
            };
            for (i, v) in bytes.into_iter().enumerate() {
                if let Some(x) = b.get_mut(p + i) {
                    *x = v;
                }
            }
        }
        Mutation::Truncate { at } => {
            let n = at.index(b.len());
            b.truncate(n);
        }
        Mutation::Insert { at, bytes } => {
            let p = at.index(b.len() + 1);
            b.splice(p..p, bytes.iter().copied());
        }
        Mutation::Delete { at, len } => {
            let p = at.index(b.len());
            let e = (p + *len as usize).min(b.len());
            b.drain(p..e);
        }
    }
}

/// A seed chosen by `pick`, mutated by `muts`.
fn mutated(seeds: &[Vec<u8>], pick: &Index, muts: &[Mutation], head_len: usize) -> Vec<u8> {
    let mut b = seeds[pick.index(seeds.len())].clone();
    for m in muts {
        apply(&mut b, m, head_len);
    }
    b
}

fn mutations() -> impl Strategy<Value = (Index, Vec<Mutation>)> {
    (any::<Index>(), prop::collection::vec(mutation(), 1..6))
}

fn random_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..1024)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A scratch folder for one property's files.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Self {
        Scratch(tempfile::tempdir().unwrap())
    }
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

/// The bytes a writer wrote to `name` in a fresh folder.
fn written(name: &str, write: impl FnOnce(&Path)) -> Vec<u8> {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(name);
    write(&p);
    std::fs::read(&p).unwrap()
}

fn ramp(c: usize, h: usize, w: usize) -> Array3<f32> {
    Array3::from_shape_fn((c, h, w), |(k, i, j)| {
        ((k * 31 + i * 7 + j * 3) % 17) as f32 / 16.0
    })
}

// ---------------------------------------------------------------------------------------------
// NPY

fn npy_seeds() -> Vec<Vec<u8>> {
    let a2 = Array2::from_shape_fn((4, 5), |(i, j)| (i * 5 + j) as f32);
    vec![
        written("a.npy", |p| io::npy::write_npy(p, &a2).unwrap()),
        written("a.npy", |p| io::npy::write_npy(p, &ramp(5, 3, 4)).unwrap()),
        written("a.npy", |p| {
            io::npy::write_npy(p, &ramp(2, 3, 4).mapv(|v| v as f64)).unwrap()
        }),
        written("a.npy", |p| {
            io::npy::write_npy(p, &a2.mapv(|v| v as i16).reversed_axes()).unwrap()
        }),
        written("a.npy", |p| {
            io::npy::write_npy(p, &a2.mapv(|v| v as u8)).unwrap()
        }),
        written("a.npy", |p| {
            io::npy::write_npy(p, &a2.mapv(|v| Complex::new(v, -v))).unwrap()
        }),
        written("a.npy", |p| {
            let a = Array::from_shape_fn(IxDyn(&[4, 1, 2, 3]), |i| i[0] as f32);
            io::npy::write_npy(p, &a).unwrap()
        }),
    ]
}

/// Every NPY reader on `p`.
fn read_npy_all(p: &Path) {
    let _ = io::read_image(p);
    let _ = io::npy::read_npy_f64(p);
    let _ = io::npy::read_npy_complex(p);
    if let Ok(Some(v)) = io::npy::NpyVolume::open(p) {
        let _ = v.slice(0);
        let _ = v.slice(v.dim[0].saturating_sub(1));
        let _ = v.slice(usize::MAX);
    }
    let _ = io::read_image(format!("{}#z=1", p.display()));
}

/// An NPY file from a header literal and a body.
fn npy_bytes(header: &str, body: &[u8]) -> Vec<u8> {
    let mut h = header.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(body);
    out
}

fn dim_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(3),
        Just(64),
        Just(100_000),
        Just(u32::MAX as u64),
        Just(1 << 62),
        Just(u64::MAX),
        0u64..10,
    ]
}

#[test]
fn npy_random_bytes() {
    let s = Scratch::new();
    fuzz("npy random", 200, random_bytes(), |b| {
        read_npy_all(&s.write("r.npy", &b));
        let mut m = b"\x93NUMPY\x01\x00".to_vec();
        m.extend(b);
        read_npy_all(&s.write("m.npy", &m));
    });
}

#[test]
fn npy_mutated() {
    let s = Scratch::new();
    let seeds = npy_seeds();
    fuzz("npy mutated", 300, mutations(), |(pick, muts)| {
        read_npy_all(&s.write("m.npy", &mutated(&seeds, &pick, &muts, 128)));
    });
}

#[test]
fn npy_declared_shapes() {
    let s = Scratch::new();
    let descr = prop_oneof![
        Just("<f4"),
        Just("<f8"),
        Just(">f4"),
        Just("|u1"),
        Just("<i2"),
        Just("|b1"),
        Just("<c8"),
        Just("<c16"),
        Just("<f2"),
        Just("<U3"),
        Just("<f0"),
        Just("<f99999999999999999999"),
    ];
    let strat = (
        descr,
        any::<bool>(),
        prop::collection::vec(dim_value(), 0..5),
        prop::collection::vec(any::<u8>(), 0..200),
        any::<bool>(),
    );
    fuzz(
        "npy declared shapes",
        300,
        strat,
        |(descr, fortran, dims, body, v2)| {
            let shape: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
            let shape = match shape.len() {
                1 => format!("({},)", shape[0]),
                _ => format!("({})", shape.join(", ")),
            };
            let f = if fortran { "True" } else { "False" };
            let header =
                format!("{{'descr': '{descr}', 'fortran_order': {f}, 'shape': {shape}, }}");
            let mut b = npy_bytes(&header, &body);
            if v2 {
                // version 2: a 4-byte header length (here a huge one)
                b[6] = 2;
                b.splice(8..10, 0xFFFF_FFF0u32.to_le_bytes());
            }
            read_npy_all(&s.write("s.npy", &b));
        },
    );
}

// ---------------------------------------------------------------------------------------------
// NIfTI

fn nifti_raw_seeds() -> Vec<Vec<u8>> {
    let v = ramp(3, 4, 5);
    vec![
        written("a.nii", |p| {
            io::nifti::write_nifti(p, &v, None, None).unwrap()
        }),
        written("a.nii", |p| {
            io::nifti::write_nifti(p, &ramp(1, 6, 6), Some([2.0, 0.5, 0.5]), None).unwrap()
        }),
    ]
}

fn read_nifti_all(p: &Path) {
    let _ = io::read_image(p);
    let _ = io::read_image(format!("{}#z=1", p.display()));
    if let Ok(mut r) = io::nifti::NiftiSlices::open(p) {
        let mut n = 0;
        while let Some(s) = r.next_slice() {
            n += 1;
            if s.is_err() || n > 64 {
                break;
            }
        }
    }
}

/// Structured edits of a NIfTI-1 header (offsets of the 348-byte header).
#[derive(Debug, Clone)]
enum NiftiEdit {
    Dim(usize, i16),
    Datatype(i16),
    Bitpix(i16),
    VoxOffset(f32),
    Slope(f32),
    Inter(f32),
    Pixdim(usize, f32),
    Sform(i16),
    Srow(usize, f32),
    Magic(u8),
}

fn nifti_float() -> impl Strategy<Value = f32> {
    prop_oneof![
        Just(0.0f32),
        Just(-1.0),
        Just(1.0),
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(f32::NEG_INFINITY),
        Just(1e30),
        Just(348.0),
        Just(352.0),
        Just(353.5),
        Just(1e9),
        any::<f32>(),
    ]
}

fn nifti_edit() -> impl Strategy<Value = NiftiEdit> {
    let small_i16 = prop_oneof![
        Just(0i16),
        Just(1),
        Just(2),
        Just(3),
        Just(4),
        Just(7),
        Just(8),
        Just(-1),
        Just(i16::MAX),
        Just(i16::MIN),
        any::<i16>(),
    ];
    let datatype = prop_oneof![
        Just(2i16),
        Just(4),
        Just(8),
        Just(16),
        Just(32),
        Just(64),
        Just(128),
        Just(256),
        Just(512),
        Just(768),
        Just(1024),
        Just(1280),
        Just(1536),
        Just(1792),
        Just(2048),
        Just(2304),
        Just(0),
        any::<i16>(),
    ];
    prop_oneof![
        (0usize..8, small_i16.clone()).prop_map(|(i, v)| NiftiEdit::Dim(i, v)),
        datatype.prop_map(NiftiEdit::Datatype),
        prop_oneof![
            Just(8i16),
            Just(16),
            Just(32),
            Just(64),
            Just(0),
            Just(-8),
            Just(7)
        ]
        .prop_map(NiftiEdit::Bitpix),
        nifti_float().prop_map(NiftiEdit::VoxOffset),
        nifti_float().prop_map(NiftiEdit::Slope),
        nifti_float().prop_map(NiftiEdit::Inter),
        (0usize..8, nifti_float()).prop_map(|(i, v)| NiftiEdit::Pixdim(i, v)),
        small_i16.prop_map(NiftiEdit::Sform),
        (0usize..12, nifti_float()).prop_map(|(i, v)| NiftiEdit::Srow(i, v)),
        any::<u8>().prop_map(NiftiEdit::Magic),
    ]
}

fn apply_nifti(b: &mut [u8], e: &NiftiEdit) {
    let mut put = |off: usize, bytes: &[u8]| {
        if let Some(dst) = b.get_mut(off..off + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    };
    match *e {
        NiftiEdit::Dim(i, v) => put(40 + 2 * i, &v.to_le_bytes()),
        NiftiEdit::Datatype(v) => put(70, &v.to_le_bytes()),
        NiftiEdit::Bitpix(v) => put(72, &v.to_le_bytes()),
        NiftiEdit::VoxOffset(v) => put(108, &v.to_le_bytes()),
        NiftiEdit::Slope(v) => put(112, &v.to_le_bytes()),
        NiftiEdit::Inter(v) => put(116, &v.to_le_bytes()),
        NiftiEdit::Pixdim(i, v) => put(76 + 4 * i, &v.to_le_bytes()),
        NiftiEdit::Sform(v) => put(254, &v.to_le_bytes()),
        NiftiEdit::Srow(i, v) => put(280 + 4 * i, &v.to_le_bytes()),
        NiftiEdit::Magic(v) => put(345, &[v]),
    }
}

#[test]
fn nifti_random_bytes() {
    let s = Scratch::new();
    fuzz("nifti random", 150, random_bytes(), |b| {
        read_nifti_all(&s.write("r.nii", &b));
        read_nifti_all(&s.write("r.nii.gz", &gzip(&b)));
        // a 348-byte header's worth of random bytes with the right size and magic
        let mut h = b.clone();
        h.resize(400, 0);
        h[..4].copy_from_slice(&348i32.to_le_bytes());
        h[344..348].copy_from_slice(b"n+1\0");
        read_nifti_all(&s.write("h.nii", &h));
    });
}

#[test]
fn nifti_mutated() {
    let s = Scratch::new();
    let seeds = nifti_raw_seeds();
    let gz_seeds: Vec<Vec<u8>> = seeds.iter().map(|b| gzip(b)).collect();
    fuzz(
        "nifti mutated",
        300,
        (mutations(), any::<bool>()),
        |((pick, muts), gz)| {
            if gz {
                // the compressed stream mutated, and the decompressed bytes mutated then packed
                read_nifti_all(&s.write("m.nii.gz", &mutated(&gz_seeds, &pick, &muts, 64)));
                let raw = mutated(&seeds, &pick, &muts, 352);
                read_nifti_all(&s.write("r.nii.gz", &gzip(&raw)));
            } else {
                read_nifti_all(&s.write("m.nii", &mutated(&seeds, &pick, &muts, 352)));
            }
        },
    );
}

#[test]
fn nifti_header_fields() {
    let s = Scratch::new();
    let seeds = nifti_raw_seeds();
    let strat = (
        any::<Index>(),
        prop::collection::vec(nifti_edit(), 1..5),
        any::<bool>(),
    );
    fuzz("nifti header fields", 300, strat, |(pick, edits, gz)| {
        let mut b = seeds[pick.index(seeds.len())].clone();
        for e in &edits {
            apply_nifti(&mut b, e);
        }
        if gz {
            read_nifti_all(&s.write("e.nii.gz", &gzip(&b)));
        } else {
            read_nifti_all(&s.write("e.nii", &b));
        }
    });
}

// ---------------------------------------------------------------------------------------------
// DICOM

use dicom_core::value::PixelFragmentSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
const RLE: &str = "1.2.840.10008.1.2.5";
const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const JPEG_LOSSLESS: &str = "1.2.840.10008.1.2.4.70";
const JPEG2000: &str = "1.2.840.10008.1.2.4.90";

/// The values a generated DICOM file declares.
#[derive(Debug, Clone)]
struct DicomSpec {
    ts: &'static str,
    rows: u16,
    cols: u16,
    frames: Option<String>,
    spp: u16,
    bits_alloc: u16,
    bits_stored: u16,
    high_bit: u16,
    signed: u16,
    photometric: &'static str,
    planar: Option<u16>,
    slope: Option<String>,
    intercept: Option<String>,
    spacing: Option<String>,
    thickness: Option<String>,
    position: Option<String>,
    orientation: Option<String>,
    pixels: Vec<u8>,
    encapsulated: bool,
}

fn ds_string() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("1".to_string())),
        Just(Some("-1024".to_string())),
        Just(Some("0.5\\0.5".to_string())),
        Just(Some("NaN".to_string())),
        Just(Some("inf".to_string())),
        Just(Some("-inf\\nan".to_string())),
        Just(Some("1e308".to_string())),
        Just(Some("abc".to_string())),
        Just(Some("".to_string())),
        Just(Some("1\\0\\0\\0\\1\\0".to_string())),
        Just(Some("0\\0\\1e308".to_string())),
    ]
}

fn u16_field() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(0u16),
        Just(1),
        Just(2),
        Just(3),
        Just(4),
        Just(7),
        Just(8),
        Just(12),
        Just(16),
        Just(32),
        Just(64),
        Just(255),
        Just(u16::MAX),
        any::<u16>(),
    ]
}

fn dicom_spec() -> impl Strategy<Value = DicomSpec> {
    let ts = prop_oneof![
        4 => Just(EXPLICIT_LE),
        2 => Just(IMPLICIT_LE),
        1 => Just(EXPLICIT_BE),
        1 => Just(DEFLATED),
        2 => Just(RLE),
        1 => Just(JPEG_BASELINE),
        1 => Just(JPEG_LOSSLESS),
        1 => Just(JPEG2000),
    ];
    let frames = prop_oneof![
        Just(None),
        Just(Some("1".to_string())),
        Just(Some("2".to_string())),
        Just(Some("0".to_string())),
        Just(Some("-3".to_string())),
        Just(Some("4294967296".to_string())),
        Just(Some("2147483647".to_string())),
        Just(Some("x".to_string())),
    ];
    let photometric = prop_oneof![
        Just("MONOCHROME2"),
        Just("MONOCHROME1"),
        Just("RGB"),
        Just("YBR_FULL"),
        Just("PALETTE COLOR"),
        Just("BOGUS"),
    ];
    let dims = prop_oneof![
        3 => (1u16..9, 1u16..9),
        1 => (u16_field(), u16_field()),
    ];
    let bits = prop_oneof![
        3 => Just((16u16, 12u16, 11u16)),
        2 => Just((8, 8, 7)),
        1 => Just((1, 1, 0)),
        1 => Just((32, 32, 31)),
        1 => (u16_field(), u16_field(), u16_field()),
    ];
    (
        ts,
        dims,
        frames,
        prop_oneof![4 => Just(1u16), 1 => Just(3), 1 => u16_field()],
        bits,
        (0u16..2, photometric, prop::option::of(0u16..3)),
        (ds_string(), ds_string(), ds_string(), ds_string()),
        (ds_string(), ds_string()),
        prop::collection::vec(any::<u8>(), 0..600),
        any::<bool>(),
    )
        .prop_map(
            |(
                ts,
                (rows, cols),
                frames,
                spp,
                (bits_alloc, bits_stored, high_bit),
                (signed, photometric, planar),
                (slope, intercept, spacing, thickness),
                (position, orientation),
                pixels,
                encapsulated,
            )| DicomSpec {
                ts,
                rows,
                cols,
                frames,
                spp,
                bits_alloc,
                bits_stored,
                high_bit,
                signed,
                photometric,
                planar,
                slope,
                intercept,
                spacing,
                thickness,
                position,
                orientation,
                pixels,
                encapsulated,
            },
        )
}

/// The file `spec` describes, or None when dicom-object refuses to write it.
fn dicom_bytes(spec: &DicomSpec) -> Option<Vec<u8>> {
    let mut o = InMemDicomObject::new_empty();
    let mut str_el = |tag, vr, v: &str| {
        o.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
    };
    str_el(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2");
    str_el(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4.5");
    str_el(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.4");
    str_el(tags::MODALITY, VR::CS, "CT");
    str_el(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, spec.photometric);
    for (tag, v) in [
        (tags::NUMBER_OF_FRAMES, &spec.frames),
        (tags::RESCALE_SLOPE, &spec.slope),
        (tags::RESCALE_INTERCEPT, &spec.intercept),
        (tags::PIXEL_SPACING, &spec.spacing),
        (tags::SLICE_THICKNESS, &spec.thickness),
        (tags::IMAGE_POSITION_PATIENT, &spec.position),
        (tags::IMAGE_ORIENTATION_PATIENT, &spec.orientation),
    ] {
        if let Some(v) = v {
            let vr = if tag == tags::NUMBER_OF_FRAMES {
                VR::IS
            } else {
                VR::DS
            };
            str_el(tag, vr, v);
        }
    }
    let mut us = |tag, v: u16| {
        o.put(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
    };
    us(tags::ROWS, spec.rows);
    us(tags::COLUMNS, spec.cols);
    us(tags::SAMPLES_PER_PIXEL, spec.spp);
    us(tags::BITS_ALLOCATED, spec.bits_alloc);
    us(tags::BITS_STORED, spec.bits_stored);
    us(tags::HIGH_BIT, spec.high_bit);
    us(tags::PIXEL_REPRESENTATION, spec.signed);
    if let Some(p) = spec.planar {
        us(tags::PLANAR_CONFIGURATION, p);
    }
    let compressed = ![EXPLICIT_LE, IMPLICIT_LE, EXPLICIT_BE, DEFLATED].contains(&spec.ts);
    if compressed || spec.encapsulated {
        let frags = fragments(spec);
        o.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PixelFragmentSequence::new(Vec::<u32>::new(), frags),
        ));
    } else {
        let vr = if spec.bits_alloc > 8 { VR::OW } else { VR::OB };
        let mut px = spec.pixels.clone();
        if px.len() % 2 == 1 {
            px.push(0);
        }
        o.put(DataElement::new(
            tags::PIXEL_DATA,
            vr,
            PrimitiveValue::from(px),
        ));
    }
    let file = o
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(spec.ts))
        .ok()?;
    let mut out = Vec::new();
    file.write_all(&mut out).ok()?;
    Some(out)
}

/// Encapsulated fragments for `spec`: random bytes behind the header its transfer syntax
/// starts with (RLE segment table, JPEG SOI + SOF, JPEG 2000 SOC + SIZ), the sizes in that
/// header drawn from the random bytes too.
fn fragments(spec: &DicomSpec) -> Vec<Vec<u8>> {
    let px = &spec.pixels;
    let byte = |i: usize| px.get(i).copied().unwrap_or(0);
    let word = |i: usize| u32::from_le_bytes([byte(i), byte(i + 1), byte(i + 2), byte(i + 3)]);
    let mut f = match spec.ts {
        RLE => {
            // segment count (mostly small, sometimes any u32) and 15 offsets
            let mut h = vec![0u8; 64];
            let n = if byte(0) & 0x80 != 0 {
                word(0)
            } else {
                u32::from(byte(0) % 16)
            };
            h[0..4].copy_from_slice(&n.to_le_bytes());
            for i in 0..15 {
                let off = if byte(1) & 0x80 != 0 {
                    word(4 * i)
                } else {
                    64 + 8 * i as u32 * u32::from(byte(i))
                };
                h[4 + 4 * i..8 + 4 * i].copy_from_slice(&off.to_le_bytes());
            }
            h
        }
        JPEG_BASELINE | JPEG_LOSSLESS => {
            let sof = if spec.ts == JPEG_BASELINE { 0xC0 } else { 0xC3 };
            let mut h = vec![0xFF, 0xD8, 0xFF, sof, 0, 11, 8];
            h.extend_from_slice(&(word(0) as u16).to_be_bytes()); // Y
            h.extend_from_slice(&(word(2) as u16).to_be_bytes()); // X
            h.extend_from_slice(&[1, 1, 0x11, 0]); // one component
            h
        }
        JPEG2000 => {
            let mut h = vec![0xFF, 0x4F, 0xFF, 0x51, 0, 41, 0, 0];
            for v in [
                word(0) >> byte(8).min(31),
                word(4) >> byte(9).min(31),
                0,
                0,
                1,
                1,
                0,
                0,
            ] {
                h.extend_from_slice(&v.to_be_bytes());
            }
            h.extend_from_slice(&[0, 1, 7, 1, 1]);
            h
        }
        _ => Vec::new(),
    };
    f.extend_from_slice(px);
    if f.is_empty() {
        return Vec::new();
    }
    f.chunks(if spec.encapsulated { 200 } else { f.len() })
        .map(|c| c.to_vec())
        .collect()
}

fn dicom_seeds() -> Vec<Vec<u8>> {
    let px: Vec<u8> = (0..8 * 8 * 2).map(|i| (i * 37 % 251) as u8).collect();
    let base = DicomSpec {
        ts: EXPLICIT_LE,
        rows: 8,
        cols: 8,
        frames: None,
        spp: 1,
        bits_alloc: 16,
        bits_stored: 12,
        high_bit: 11,
        signed: 1,
        photometric: "MONOCHROME2",
        planar: None,
        slope: Some("1".into()),
        intercept: Some("-1024".into()),
        spacing: Some("0.5\\0.5".into()),
        thickness: Some("2".into()),
        position: Some("0\\0\\10".into()),
        orientation: Some("1\\0\\0\\0\\1\\0".into()),
        pixels: px.clone(),
        encapsulated: false,
    };
    let mut seeds = vec![dicom_bytes(&base).unwrap()];
    seeds.push(
        dicom_bytes(&DicomSpec {
            ts: IMPLICIT_LE,
            ..base.clone()
        })
        .unwrap(),
    );
    seeds.push(
        dicom_bytes(&DicomSpec {
            ts: EXPLICIT_LE,
            rows: 4,
            cols: 4,
            spp: 3,
            bits_alloc: 8,
            bits_stored: 8,
            high_bit: 7,
            signed: 0,
            photometric: "RGB",
            planar: Some(0),
            pixels: px[..48].to_vec(),
            ..base.clone()
        })
        .unwrap(),
    );
    seeds
}

fn read_dicom_all(p: &Path) {
    let _ = io::read_image(p);
}

#[test]
fn dicom_random_bytes() {
    let s = Scratch::new();
    fuzz("dicom random", 150, random_bytes(), |b| {
        read_dicom_all(&s.write("r.dcm", &b));
        // past the preamble and the magic
        let mut m = vec![0u8; 128];
        m.extend_from_slice(b"DICM");
        m.extend(b);
        read_dicom_all(&s.write("m.dcm", &m));
    });
}

#[test]
fn dicom_mutated() {
    let s = Scratch::new();
    let seeds = dicom_seeds();
    fuzz("dicom mutated", 300, mutations(), |(pick, muts)| {
        read_dicom_all(&s.write("m.dcm", &mutated(&seeds, &pick, &muts, 400)));
    });
}

#[test]
fn dicom_declared_values() {
    let s = Scratch::new();
    fuzz("dicom declared values", 300, dicom_spec(), |spec| {
        if let Some(b) = dicom_bytes(&spec) {
            read_dicom_all(&s.write("g.dcm", &b));
        }
    });
}

#[test]
fn dicom_series_with_a_bad_slice() {
    let seeds = dicom_seeds();
    fuzz("dicom series", 60, mutations(), |(pick, muts)| {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.dcm"), &seeds[0]).unwrap();
        std::fs::write(d.path().join("b.dcm"), &seeds[1]).unwrap();
        std::fs::write(d.path().join("c.dcm"), mutated(&seeds, &pick, &muts, 400)).unwrap();
        let _ = io::read_image(d.path());
        if let Ok(series) = io::dicom::DicomSeries::open(d.path()) {
            for k in 0..series.files.len() {
                let _ = series.read_slice(k);
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// PNG / JPEG

fn png_seeds() -> Vec<Vec<u8>> {
    use io::png::{write_png, PngBitDepth};
    let rgba = image::RgbaImage::from_fn(5, 4, |x, y| image::Rgba([x as u8, y as u8, 9, 200]));
    let mut rgba_png = Vec::new();
    image::DynamicImage::ImageRgba8(rgba.clone())
        .write_to(
            &mut std::io::Cursor::new(&mut rgba_png),
            image::ImageFormat::Png,
        )
        .unwrap();
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageRgb8(image::DynamicImage::ImageRgba8(rgba).to_rgb8())
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    vec![
        written("a.png", |p| {
            write_png(p, &ramp(1, 6, 5), PngBitDepth::Eight).unwrap()
        }),
        written("a.png", |p| {
            write_png(p, &ramp(1, 4, 7), PngBitDepth::Sixteen).unwrap()
        }),
        written("a.png", |p| {
            write_png(p, &ramp(3, 5, 5), PngBitDepth::Eight).unwrap()
        }),
        rgba_png,
        jpeg,
    ]
}

/// A PNG with its IHDR fields changed and the chunk's CRC made right again.
fn png_with_ihdr(png: &[u8], w: u32, h: u32, depth: u8, color: u8) -> Vec<u8> {
    let mut b = png.to_vec();
    if b.len() < 33 || &b[12..16] != b"IHDR" {
        return b;
    }
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    b[24] = depth;
    b[25] = color;
    let mut crc = flate2::Crc::new();
    crc.update(&b[12..29]);
    b[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    b
}

#[test]
fn png_random_bytes() {
    let s = Scratch::new();
    fuzz("png random", 150, random_bytes(), |b| {
        let _ = io::read_image(s.write("r.png", &b));
        let mut m = b"\x89PNG\r\n\x1a\n".to_vec();
        m.extend(&b);
        let _ = io::read_image(s.write("m.png", &m));
        let mut j = vec![0xFF, 0xD8, 0xFF];
        j.extend(&b);
        let _ = io::read_image(s.write("j.jpg", &j));
    });
}

#[test]
fn png_mutated() {
    let s = Scratch::new();
    let seeds = png_seeds();
    fuzz("png mutated", 300, mutations(), |(pick, muts)| {
        let b = mutated(&seeds, &pick, &muts, 64);
        let _ = io::read_image(s.write("m.png", &b));
        let _ = io::read_image(s.write("m.jpg", &b));
    });
}

#[test]
fn png_declared_sizes() {
    let s = Scratch::new();
    let seeds = png_seeds();
    let strat = (
        any::<Index>(),
        interesting_u32(),
        interesting_u32(),
        prop_oneof![Just(1u8), Just(2), Just(4), Just(8), Just(16), any::<u8>()],
        prop_oneof![Just(0u8), Just(2), Just(3), Just(4), Just(6), any::<u8>()],
    );
    fuzz(
        "png declared sizes",
        200,
        strat,
        |(pick, w, h, depth, color)| {
            let seed = &seeds[pick.index(seeds.len() - 1)]; // PNGs only
            let b = png_with_ihdr(seed, w, h, depth, color);
            let _ = io::read_image(s.write("s.png", &b));
        },
    );
}

// ---------------------------------------------------------------------------------------------
// TIFF

fn tiff_seeds() -> Vec<Vec<u8>> {
    use tiff::encoder::{colortype, compression, TiffEncoder};
    type Enc<'a> = TiffEncoder<&'a mut std::io::Cursor<Vec<u8>>>;
    let enc = |f: &dyn Fn(&mut Enc)| {
        let mut c = std::io::Cursor::new(Vec::new());
        {
            let mut e = TiffEncoder::new(&mut c).unwrap();
            f(&mut e);
        }
        c.into_inner()
    };
    let g8: Vec<u8> = (0..30).collect();
    let g16: Vec<u16> = (0..30).map(|v| v * 1000).collect();
    let rgb: Vec<u8> = (0..90).map(|v| v as u8).collect();
    vec![
        written("a.tif", |p| {
            io::tiff::write_tiff(p, &ramp(1, 5, 6)).unwrap()
        }),
        written("a.tif", |p| {
            io::tiff::write_tiff(p, &ramp(3, 4, 4)).unwrap()
        }),
        enc(&|e| e.write_image::<colortype::Gray8>(6, 5, &g8).unwrap()),
        enc(&|e| e.write_image::<colortype::Gray16>(5, 6, &g16).unwrap()),
        enc(&|e| e.write_image::<colortype::RGB8>(6, 5, &rgb).unwrap()),
        enc(&|e| {
            e.write_image_with_compression::<colortype::Gray8, _>(
                6,
                5,
                compression::Deflate::default(),
                &g8,
            )
            .unwrap()
        }),
        enc(&|e| {
            e.write_image_with_compression::<colortype::Gray16, _>(5, 6, compression::Lzw, &g16)
                .unwrap()
        }),
        enc(&|e| {
            e.write_image_with_compression::<colortype::Gray8, _>(6, 5, compression::Packbits, &g8)
                .unwrap()
        }),
    ]
}

/// Sets field `field` (0 tag, 1 type, 2 count, 3 value) of IFD entry `entry` of the first IFD
/// of a little-endian TIFF.
fn tiff_with_entry(tif: &[u8], entry: &Index, field: u8, value: u32) -> Vec<u8> {
    let mut b = tif.to_vec();
    let Some(ifd) = b
        .get(4..8)
        .map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]]) as usize)
    else {
        return b;
    };
    let Some(n) = b
        .get(ifd..ifd + 2)
        .map(|v| u16::from_le_bytes([v[0], v[1]]) as usize)
    else {
        return b;
    };
    if n == 0 {
        return b;
    }
    let e = ifd + 2 + 12 * entry.index(n);
    let (off, len) = match field {
        0 => (0, 2),
        1 => (2, 2),
        2 => (4, 4),
        _ => (8, 4),
    };
    if let Some(dst) = b.get_mut(e + off..e + off + len) {
        dst.copy_from_slice(&value.to_le_bytes()[..len]);
    }
    b
}

#[test]
fn tiff_random_bytes() {
    let s = Scratch::new();
    fuzz("tiff random", 150, random_bytes(), |b| {
        let _ = io::read_image(s.write("r.tif", &b));
        let mut m = b"II*\0\x08\0\0\0".to_vec();
        m.extend(&b);
        let _ = io::read_image(s.write("m.tif", &m));
    });
}

#[test]
fn tiff_mutated() {
    let s = Scratch::new();
    let seeds = tiff_seeds();
    fuzz("tiff mutated", 300, mutations(), |(pick, muts)| {
        let _ = io::read_image(s.write("m.tif", &mutated(&seeds, &pick, &muts, 256)));
    });
}

#[test]
fn tiff_ifd_entries() {
    let s = Scratch::new();
    let seeds = tiff_seeds();
    let edit = (any::<Index>(), 0u8..4, interesting_u32());
    let strat = (any::<Index>(), prop::collection::vec(edit, 1..4));
    fuzz("tiff ifd entries", 300, strat, |(pick, edits)| {
        let mut b = seeds[pick.index(seeds.len())].clone();
        for (entry, field, value) in &edits {
            b = tiff_with_entry(&b, entry, *field, *value);
        }
        // the same file under a PNG name goes through the image crate's format guess
        let _ = io::read_image(s.write("e.tif", &b));
        let _ = io::read_image(s.write("e.png", &b));
    });
}

// ---------------------------------------------------------------------------------------------
// IDX

use scoreinv::train::data::idx::{encode_idx, read_idx};

#[test]
fn idx_random_and_mutated() {
    let s = Scratch::new();
    let seeds = vec![
        encode_idx(&[3, 4, 5], &(0..60).collect::<Vec<u8>>()),
        encode_idx(&[7], &[1, 2, 3, 4, 5, 6, 7]),
    ];
    let gz_seeds: Vec<Vec<u8>> = seeds.iter().map(|b| gzip(b)).collect();
    let strat = prop_oneof![
        random_bytes().prop_map(|b| (b, None)),
        mutations().prop_map(|m| (Vec::new(), Some(m))),
    ];
    fuzz("idx", 300, (strat, any::<bool>()), |((b, m), gz)| {
        let bytes = match m {
            None => b,
            Some((pick, muts)) if gz => mutated(&gz_seeds, &pick, &muts, 32),
            Some((pick, muts)) => mutated(&seeds, &pick, &muts, 32),
        };
        let _ = read_idx(&s.write("m.idx", &bytes));
        let _ = read_idx(&s.write("z.idx.gz", &gzip(&bytes)));
    });
}

#[test]
fn idx_declared_dims() {
    let s = Scratch::new();
    let strat = (
        prop::collection::vec(interesting_u32(), 0..5),
        prop::collection::vec(any::<u8>(), 0..300),
        any::<bool>(),
    );
    fuzz("idx declared dims", 200, strat, |(dims, body, gz)| {
        let mut b = vec![0, 0, 8, dims.len() as u8];
        for d in &dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend(body);
        let b = if gz { gzip(&b) } else { b };
        let _ = read_idx(&s.write("d.idx", &b));
    });
}

// ---------------------------------------------------------------------------------------------
// safetensors and model directories

use scoreinv::models::model_dir::{load_model_dir, save_model_dir, ModelConfig, ModelDirConfig};
use scoreinv::train::checkpoint::{write_tensors, TensorFile};
use tch::{Device, Kind, Tensor};

fn read_tensor_file(p: &Path) {
    if let Ok(f) = TensorFile::read(p) {
        let _ = f.metadata();
        for n in f.names() {
            let _ = f.tensor(&n, None, Device::Cpu);
            let _ = f.tensor(&n, Some(&[2, 3]), Device::Cpu);
        }
        let _ = f.tensor("missing", None, Device::Cpu);
    }
}

fn safetensors_seed() -> Vec<u8> {
    written("t.safetensors", |p| {
        let a = Tensor::arange(6, (Kind::Float, Device::Cpu)).reshape([2, 3]);
        let b = Tensor::from_slice(&[1.5f32, f32::INFINITY, f32::NAN]);
        write_tensors(
            p,
            &[("a".into(), a), ("b".into(), b)],
            [("step".to_string(), "3".to_string())].into(),
        )
        .unwrap()
    })
}

/// `(name, dtype, shape, data offsets)` of a safetensors header entry.
type TensorEntry = (String, String, Vec<u64>, (u64, u64));

/// A safetensors file from a header of entries and a body.
fn safetensors_bytes(entries: &[TensorEntry], body: &[u8]) -> Vec<u8> {
    let mut h = serde_json::Map::new();
    for (name, dtype, shape, (s, e)) in entries {
        h.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [s, e]}),
        );
    }
    let text = serde_json::Value::Object(h).to_string();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(body);
    out
}

#[test]
fn safetensors_random_and_mutated() {
    let s = Scratch::new();
    let seeds = vec![safetensors_seed()];
    let strat = prop_oneof![
        random_bytes().prop_map(|b| (b, None)),
        mutations().prop_map(|m| (Vec::new(), Some(m))),
    ];
    fuzz("safetensors", 300, strat, |(b, m)| {
        let bytes = match m {
            None => b,
            Some((pick, muts)) => mutated(&seeds, &pick, &muts, 200),
        };
        read_tensor_file(&s.write("m.safetensors", &bytes));
    });
}

#[test]
fn safetensors_declared_shapes() {
    let s = Scratch::new();
    let dtype = prop_oneof![
        Just("F32".to_string()),
        Just("F64".to_string()),
        Just("U8".to_string()),
        Just("BOOL".to_string()),
        Just("XYZ".to_string()),
    ];
    let entry = (
        "[a-c]",
        dtype,
        prop::collection::vec(dim_value(), 0..4),
        (0u64..64, prop_oneof![0u64..64, dim_value()]),
    );
    let strat = (
        prop::collection::vec(entry, 0..3),
        prop::collection::vec(any::<u8>(), 0..64),
    );
    fuzz("safetensors shapes", 300, strat, |(entries, body)| {
        read_tensor_file(&s.write("s.safetensors", &safetensors_bytes(&entries, &body)));
    });
}

/// A valid tiny model directory: `(config.json, model.safetensors)` bytes.
fn model_dir_seed(json: serde_json::Value) -> (Vec<u8>, Vec<u8>) {
    let cfg: ModelDirConfig = serde_json::from_value(json).unwrap();
    let kind = cfg.sde.build().unwrap().kind();
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let _net = cfg.model.build(&vs.root(), &cfg.data, kind).unwrap();
    let weights = scoreinv::models::sorted_variables(&vs);
    let d = tempfile::tempdir().unwrap();
    save_model_dir(d.path(), &cfg, &weights).unwrap();
    load_model_dir(d.path(), Device::Cpu).expect("the seed model loads");
    (
        std::fs::read(d.path().join("config.json")).unwrap(),
        std::fs::read(d.path().join("model.safetensors")).unwrap(),
    )
}

fn mlp_config() -> serde_json::Value {
    serde_json::json!({
        "format": "scoreinv-model/1",
        "model": {"type": "mlp", "hidden": 8, "n_layers": 2, "embed_dim": 4},
        "sde": {"type": "ve", "sigma_min": 0.01, "sigma_max": 5.0, "n": 10},
        "score": {"scale_by_sigma": true},
        "data": {"shape": [1, 4, 4], "centered": false, "data_range": [0.0, 255.0], "source": "fuzz"},
        "training": {"step": 1, "ema_rate": 0.999, "loss": "dsm"},
        "sampler": {"ct": {"lambda": 0.5}}
    })
}

fn ncsnpp_config() -> serde_json::Value {
    serde_json::json!({
        "format": "scoreinv-model/1",
        "model": {"type": "ncsnpp",
            "model": {"nf": 8, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [4],
                      "num_scales": 10, "fir_kernel": [1, 3, 3, 1]},
            "data": {"image_size": 8, "num_channels": 1, "centered": false},
            "training": {"continuous": true}},
        "sde": {"type": "ve", "sigma_min": 0.01, "sigma_max": 5.0, "n": 10},
        "score": {"scale_by_sigma": false},
        "data": {"shape": [1, 8, 8], "centered": false, "source": "fuzz"}
    })
}

fn load_dir(dir: &Path, config: &[u8], weights: &[u8]) {
    std::fs::write(dir.join("config.json"), config).unwrap();
    std::fs::write(dir.join("model.safetensors"), weights).unwrap();
    let _ = load_model_dir(dir, Device::Cpu);
}

#[test]
fn model_dir_mutated_weights() {
    let (cfg, weights) = model_dir_seed(mlp_config());
    let d = tempfile::tempdir().unwrap();
    fuzz("model dir weights", 120, mutations(), |(pick, muts)| {
        let w = mutated(std::slice::from_ref(&weights), &pick, &muts, 1000);
        load_dir(d.path(), &cfg, &w);
    });
}

/// A JSON edit at one node of the config tree.
#[derive(Debug, Clone)]
enum JsonEdit {
    Replace(Index, serde_json::Value),
    Remove(Index),
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    prop_oneof![
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1)),
        Just(json!(2)),
        Just(json!(3)),
        Just(json!(65)),
        Just(json!(4294967296u64)),
        Just(json!(9223372036854775807i64)),
        Just(json!(18446744073709551615u64)),
        Just(json!(1e308)),
        Just(json!(-1e308)),
        Just(json!(0.5)),
        Just(json!(1e20)),
        Just(json!("")),
        Just(json!("ncsnpp")),
        Just(json!("mlp")),
        Just(json!("vp")),
        Just(json!(null)),
        Just(json!(true)),
        Just(json!([])),
        Just(json!({})),
        Just(json!([1, 2])),
        Just(json!(vec![1; 70])),
        Just(json!([1000000, 1000000, 1000000])),
        Just(json!([-5, 4, 4])),
        Just(json!([1, 4611686018427387904u64, 4])),
        (0i64..100).prop_map(|v| json!(v)),
    ]
}

fn json_edit() -> impl Strategy<Value = JsonEdit> {
    prop_oneof![
        4 => (any::<Index>(), json_value()).prop_map(|(i, v)| JsonEdit::Replace(i, v)),
        1 => any::<Index>().prop_map(JsonEdit::Remove),
    ]
}

/// JSON pointers of every node of `v` but the root.
fn pointers(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, c) in m {
                let p = format!("{at}/{k}");
                out.push(p.clone());
                pointers(c, p, out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(c, p, out);
            }
        }
        _ => {}
    }
}

fn apply_json(v: &mut serde_json::Value, e: &JsonEdit) {
    let mut ps = Vec::new();
    pointers(v, String::new(), &mut ps);
    if ps.is_empty() {
        return;
    }
    match e {
        JsonEdit::Replace(i, new) => {
            if let Some(node) = v.pointer_mut(&ps[i.index(ps.len())]) {
                *node = new.clone();
            }
        }
        JsonEdit::Remove(i) => {
            let p = &ps[i.index(ps.len())];
            let (parent, key) = p.rsplit_once('/').unwrap();
            match v.pointer_mut(parent) {
                Some(serde_json::Value::Object(m)) => {
                    m.remove(key);
                }
                Some(serde_json::Value::Array(a)) => {
                    if let Ok(k) = key.parse::<usize>() {
                        if k < a.len() {
                            a.remove(k);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

#[test]
fn model_dir_config_edits() {
    let seeds = [
        model_dir_seed(mlp_config()),
        model_dir_seed(ncsnpp_config()),
    ];
    let jsons: Vec<serde_json::Value> = seeds
        .iter()
        .map(|(c, _)| serde_json::from_slice(c).unwrap())
        .collect();
    let d = tempfile::tempdir().unwrap();
    let strat = (
        any::<Index>(),
        prop::collection::vec(json_edit(), 1..4),
        prop::option::weighted(0.2, mutations()),
    );
    fuzz("model dir config", 150, strat, |(pick, edits, bytes)| {
        let k = pick.index(seeds.len());
        let mut v = jsons[k].clone();
        for e in &edits {
            apply_json(&mut v, e);
        }
        let mut text = serde_json::to_vec_pretty(&v).unwrap();
        if let Some((p, muts)) = bytes {
            text = mutated(&[text], &p, &muts, 4096);
        }
        load_dir(d.path(), &text, &seeds[k].1);
        // the config alone, as the CLI reads it for settings
        let _ = scoreinv::models::model_dir::read_model_config(d.path());
        let _ = scoreinv::models::model_dir::sampler_settings(d.path(), "ct");
    });
}

#[test]
fn model_config_values_are_checked_before_building() {
    // Not a fuzz property: sizes that would make the network allocate terabytes are refused
    // by the budget check, whatever the model type.
    setup();
    let mut v = ncsnpp_config();
    v["model"]["model"]["nf"] = 1_000_000.into();
    let cfg: Result<ModelDirConfig, _> = serde_json::from_value(v);
    let cfg = cfg.unwrap();
    let ModelConfig::Ncsnpp(n) = &cfg.model else {
        unreachable!()
    };
    let e = n.check_size().unwrap_err().to_string();
    assert!(
        e.contains("memory budget") && e.contains("nf = 1000000"),
        "{e}"
    );
    let mut v = mlp_config();
    v["data"]["shape"] = serde_json::json!([3, 100000, 100000]);
    let cfg: ModelDirConfig = serde_json::from_value(v).unwrap();
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let kind = cfg.sde.build().unwrap().kind();
    let e = cfg
        .model
        .build(&vs.root(), &cfg.data, kind)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("memory budget") && e.contains("MLP"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Regression tests: each input that crashed (panic, abort) or stalled a reader, read once.

/// The error of reading `bytes` as `name` (an `Ok` fails the test).
fn refused(name: &str, bytes: &[u8]) -> String {
    setup();
    let s = Scratch::new();
    let p = s.write(name, bytes);
    let t0 = std::time::Instant::now();
    let e = match name.rsplit('.').next() {
        Some("idx") => read_idx(&p).err().map(|e| e.to_string()),
        Some("safetensors") => TensorFile::read(&p)
            .and_then(|f| {
                f.names()
                    .iter()
                    .try_for_each(|n| f.tensor(n, None, Device::Cpu).map(|_| ()))
            })
            .err()
            .map(|e| e.to_string()),
        _ => io::read_image(&p).err().map(|e| e.to_string()),
    }
    .unwrap_or_else(|| panic!("{name} was read"));
    assert!(
        t0.elapsed().as_secs_f64() < 2.0,
        "{name}: {:?}",
        t0.elapsed()
    );
    e
}

fn base_spec() -> DicomSpec {
    DicomSpec {
        ts: EXPLICIT_LE,
        rows: 2,
        cols: 2,
        frames: None,
        spp: 1,
        bits_alloc: 16,
        bits_stored: 16,
        high_bit: 15,
        signed: 0,
        photometric: "MONOCHROME2",
        planar: None,
        slope: None,
        intercept: None,
        spacing: None,
        thickness: None,
        position: None,
        orientation: None,
        pixels: vec![1, 0, 2, 0, 3, 0, 4, 0],
        encapsulated: false,
    }
}

#[test]
fn regression_dicom_element_length_past_the_end_of_the_file() {
    // dicom-parser reserved and zero-filled each value's declared length (up to 4 GiB) before
    // reading it: 14 s and 4 GiB for a 700-byte file (tests/fuzz_readers.rs). A value length
    // past the end of the file is now refused first.
    let mut b = dicom_bytes(&base_spec()).unwrap();
    let p = b.windows(4).position(|w| w == [0x28, 0, 0x10, 0]).unwrap(); // Rows, US
    b[p + 4..p + 6].copy_from_slice(b"UN"); // now a long-form element...
    b[p + 8..p + 12].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes()); // ...of 4 GiB
    let e = refused("len.dcm", &b);
    assert!(
        e.contains("(0028,0010)") && e.contains("declares 4294967280 bytes"),
        "{e}"
    );
    // the same in the file meta group
    let mut b = dicom_bytes(&base_spec()).unwrap();
    let p = b.windows(4).position(|w| w == [2, 0, 0x10, 0]).unwrap(); // TransferSyntaxUID
    b[p + 4..p + 6].copy_from_slice(b"OB");
    b[p + 8..p + 12].copy_from_slice(&0x8000_0000u32.to_le_bytes());
    let e = refused("meta.dcm", &b);
    assert!(e.contains("declares 2147483648 bytes"), "{e}");
}

#[test]
fn regression_dicom_bad_element_after_pixel_data_reads_the_image() {
    // An element of a lower tag than Pixel Data after it, declaring 3 GB: `read_to(PIXEL_DATA)`
    // read on into it (tests/fuzz_readers.rs). The data set is now cut after the Pixel Data.
    let mut b = dicom_bytes(&base_spec()).unwrap();
    b.extend_from_slice(&[0x19, 0x3e, 0x63, 0x88, b'X', b'Y', 0, 0]);
    b.extend_from_slice(&3_000_000_000u32.to_le_bytes());
    setup();
    let s = Scratch::new();
    let img = io::read_image(s.write("tail.dcm", &b)).unwrap();
    assert_eq!(img.data.as_slice().unwrap(), &[1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn regression_dicom_rle_fragments_that_crashed_the_decoder() {
    let rle = |frag: Vec<u8>| {
        let mut spec = base_spec();
        spec.ts = RLE;
        spec.pixels = frag; // taken as the fragment: a 0-length header below
        let mut o = dicom_bytes(&DicomSpec {
            pixels: Vec::new(),
            ..spec.clone()
        })
        .unwrap();
        // replace the (empty) fragment sequence by one fragment holding `frag`
        let p = o
            .windows(4)
            .rposition(|w| w == [0xE0, 0x7F, 0x10, 0])
            .unwrap();
        o.truncate(p);
        o.extend_from_slice(&[
            0xE0, 0x7F, 0x10, 0, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        o.extend_from_slice(&[0xFE, 0xFF, 0, 0xE0, 0, 0, 0, 0]); // empty offset table
        o.extend_from_slice(&[0xFE, 0xFF, 0, 0xE0]);
        o.extend_from_slice(&(spec.pixels.len() as u32).to_le_bytes());
        o.extend_from_slice(&spec.pixels);
        o.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        o
    };
    let header = |n: u32, offsets: &[u32]| {
        let mut h = vec![0u8; 64];
        h[0..4].copy_from_slice(&n.to_le_bytes());
        for (i, o) in offsets.iter().enumerate() {
            h[4 + 4 * i..8 + 4 * i].copy_from_slice(&o.to_le_bytes());
        }
        h
    };
    // a valid one: 2 segments (MSB, LSB) of 4 literal bytes each
    let mut ok = header(2, &[64, 69]);
    ok.extend_from_slice(&[3, 0, 0, 0, 0, 3, 1, 2, 3, 4]);
    let s = Scratch::new();
    let img = io::read_image(s.write("ok.dcm", &rle(ok))).unwrap();
    assert_eq!(img.data.as_slice().unwrap(), &[1.0, 2.0, 3.0, 4.0]);
    // segment count 0xFFFFFFFF: the decoder allocated a 16 GiB offset table (abort)
    let e = refused("count.dcm", &rle(header(u32::MAX, &[])));
    assert!(e.contains("declares 4294967295 segments"), "{e}");
    // a fragment shorter than its header: the decoder indexed past it (panic)
    let e = refused("short.dcm", &rle(vec![2, 0, 0, 0]));
    assert!(e.contains("less than its 64-byte header"), "{e}");
    // segments that decode to fewer than Rows x Columns bytes: indexed past them (panic,
    // found by tests/fuzz_readers.rs)
    let mut few = header(2, &[64, 66]);
    few.extend_from_slice(&[0, 7, 0, 9]);
    let e = refused("few.dcm", &rle(few));
    assert!(e.contains("decodes to 1 bytes"), "{e}");
}

#[test]
fn regression_dicom_bits_stored_rows_and_frame_sizes() {
    // BitsStored 0: dicom-pixeldata asserts 1..=32 (panic, found by tests/fuzz_readers.rs);
    // BitsStored 32 over 16-bit samples: `1 << 32` for its lookup table's size (overflow
    // panic; 24 would be a table of 2^24 entries per frame).
    for stored in [0u16, 32] {
        let e = refused(
            "bits.dcm",
            &dicom_bytes(&DicomSpec {
                bits_stored: stored,
                ..base_spec()
            })
            .unwrap(),
        );
        assert!(e.contains(&format!("BitsStored = {stored}")), "{e}");
    }
    // Rows = 0: an empty image that later panicked in resizing
    let e = refused(
        "rows.dcm",
        &dicom_bytes(&DicomSpec {
            rows: 0,
            ..base_spec()
        })
        .unwrap(),
    );
    assert!(e.contains("Rows = 0") && e.contains("at least 1"), "{e}");
    // a JPEG frame declaring 65535 x 65535 pixels of 4 components: over the budget
    let e = refused(
        "jpeg.dcm",
        &dicom_bytes(&DicomSpec {
            ts: JPEG_BASELINE,
            pixels: [0xFF; 8].to_vec(),
            ..base_spec()
        })
        .unwrap(),
    );
    assert!(
        e.contains("memory budget") && e.contains("65535x65535"),
        "{e}"
    );
}

#[test]
fn regression_idx_dims_whose_product_overflows() {
    // dims.iter().product() overflowed usize (a panic in debug and test builds)
    let mut b = vec![0, 0, 8, 4];
    for _ in 0..4 {
        b.extend_from_slice(&65536u32.to_be_bytes());
    }
    let e = refused("o.idx", &b);
    assert!(e.contains("[65536, 65536, 65536, 65536]"), "{e}");
    let e = refused("z.idx", &encode_idx(&[0, 28, 28], &[]));
    assert!(e.contains("zero-length axis"), "{e}");
    // gzip: the declared size is checked before decompressing
    let mut b = vec![0, 0, 8, 1];
    b.extend_from_slice(&u32::MAX.to_be_bytes());
    let e = refused("g.idx", &gzip(&b));
    assert!(e.contains("memory budget"), "{e}");
}

#[test]
fn regression_safetensors_shape_beyond_i64() {
    // a tensor of 0 elements whose other dim is 2^63: valid for safetensors, a negative
    // dimension for libtorch (panic in Tensor::from_data_size)
    let b = safetensors_bytes(&[("a".into(), "F32".into(), vec![1 << 63, 0], (0, 0))], &[]);
    let e = refused("n.safetensors", &b);
    assert!(e.contains("too large for a tensor"), "{e}");
}

#[test]
fn regression_model_configs_that_panicked_before_building() {
    setup();
    // 70 levels of ch_mult: `1 << (levels - 1)` overflowed (panic)
    let mut v = ncsnpp_config();
    v["model"]["model"]["ch_mult"] = serde_json::json!(vec![1; 70]);
    let cfg: ModelDirConfig = serde_json::from_value(v).unwrap();
    let ModelConfig::Ncsnpp(n) = &cfg.model else {
        unreachable!()
    };
    let e = n.arch().unwrap_err().to_string();
    assert!(e.contains("70 levels"), "{e}");
    // a data shape whose product overflows i64 (panic in the MLP's width)
    let mut v = mlp_config();
    v["data"]["shape"] = serde_json::json!([1, 4611686018427387904u64, 4]);
    let cfg: ModelDirConfig = serde_json::from_value(v).unwrap();
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let kind = cfg.sde.build().unwrap().kind();
    let e = cfg
        .model
        .build(&vs.root(), &cfg.data, kind)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("not a valid per-sample shape"), "{e}");
    // init_scale 1e308: the uniform init's bound left float32 (libtorch refused the draw inside
    // tch's VarStore, a panic); and the same for every other number of the model config.
    for field in ["init_scale", "fourier_scale"] {
        for bad in [1e308, -1.0e7] {
            let mut v = ncsnpp_config();
            v["model"]["model"][field] = bad.into();
            let cfg: ModelDirConfig = serde_json::from_value(v).unwrap();
            let ModelConfig::Ncsnpp(n) = &cfg.model else {
                unreachable!()
            };
            let e = n.arch().unwrap_err().to_string();
            assert!(e.contains(field), "{field} = {bad}: {e}");
        }
    }
    let base = ncsnpp_config();
    let numbers: Vec<String> = base["model"]["model"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, x)| x.is_number())
        .map(|(k, _)| k.clone())
        .collect();
    for field in numbers {
        let mut v = base.clone();
        v["model"]["model"][field.as_str()] = 1e308.into();
        let d = tempfile::tempdir().unwrap();
        let text = serde_json::to_vec_pretty(&v).unwrap();
        let (_, weights) = model_dir_seed(ncsnpp_config());
        load_dir(d.path(), &text, &weights);
    }
}

#[test]
fn checkpoint_tensor_says_nan_or_infinite() {
    setup();
    let s = Scratch::new();
    let p = s.write("t.safetensors", &safetensors_seed());
    let f = TensorFile::read(&p).unwrap();
    let e = f.tensor("b", None, Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("1 NaN and 1 infinite values (of 3)"), "{e}");
    let d = s.write(
        "inf.safetensors",
        &written("x.safetensors", |p| {
            write_tensors(
                p,
                &[("i".into(), Tensor::from_slice(&[f32::INFINITY, 1.0]))],
                Default::default(),
            )
            .unwrap()
        }),
    );
    let e = TensorFile::read(&d)
        .unwrap()
        .tensor("i", None, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("contains 1 infinite value (of 2)") && !e.contains("NaN"),
        "{e}"
    );
}

#[test]
fn ncsnpp_parameter_bound_holds_and_is_not_loose() {
    // The budget check sizes a network from its config without building it: the bound must
    // be at least the real count (else the check misses) and not far above (else it refuses
    // models that fit).
    use scoreinv::models::config::ScoreSdeConfig;
    for (resblock, prog, prog_in, combine, fir) in [
        ("biggan", "none", "residual", "sum", true),
        ("ddpm", "none", "none", "sum", false),
        ("biggan", "output_skip", "input_skip", "cat", true),
        ("biggan", "residual", "input_skip", "sum", false),
    ] {
        let v = serde_json::json!({
            "model": {"nf": 16, "ch_mult": [1, 2, 2], "num_res_blocks": 2,
                      "attn_resolutions": [8], "resblock_type": resblock,
                      "progressive": prog, "progressive_input": prog_in,
                      "progressive_combine": combine, "fir": fir},
            "data": {"image_size": 16, "num_channels": 3}
        });
        let cfg = ScoreSdeConfig::from_json_value(&v).unwrap();
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let _net = scoreinv::models::ncsnpp::Ncsnpp::new(&vs.root(), &cfg).unwrap();
        let actual: i64 = vs.variables().values().map(|t| t.numel() as i64).sum();
        let bound = cfg.arch().unwrap().parameter_bound() as i64;
        assert!(
            bound >= actual && bound <= 4 * actual,
            "{resblock}/{prog}/{prog_in}/{combine}: bound {bound}, actual {actual}"
        );
    }
}
