//! The command line against hostile but realistic input: outputs that name inputs or folders
//! the command does not own, files that lie about their size, runs that do not belong together,
//! interrupts, and malformed flags. Every case checks the exit status (1 for a refusal: never a
//! panic (101) or an abort (a signal)), the message, and that nothing outside the output changed
//! and no partial output is left (the whole sandbox folder is hashed before and after).
use scoreinv::io::{self, Image};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A scratch folder that is the working directory of every command run in it.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The binary under test; `SCOREINV_TEST_BIN` names another one (e.g. an older build, to
    /// see which of these cases it fails).
    fn command(&self, args: &[&str]) -> Command {
        let bin = std::env::var_os("SCOREINV_TEST_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_scoreinv").into());
        let mut c = Command::new(bin);
        c.current_dir(self.dir.path())
            .args(["--device", "cpu", "--threads", "1"])
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "{args:?} failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs a command that must be refused: exit status 1 (2 for a malformed flag, clap's usage
    /// error), every needle in its message, and the sandbox exactly as before. Returns the
    /// message.
    fn refused(&self, args: &[&str], needles: &[&str]) -> String {
        let before = self.snapshot();
        let o = self.run(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(
            matches!(o.status.code(), Some(1 | 2)),
            "{args:?} should be refused with exit status 1 or 2, got {:?}:\n{err}",
            o.status.code()
        );
        assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
        for n in needles {
            assert!(err.contains(n), "{args:?}: message lacks '{n}':\n{err}");
        }
        assert_eq!(
            self.snapshot(),
            before,
            "{args:?} changed the sandbox although it was refused"
        );
        err
    }

    /// Every file and folder below the sandbox with the SHA-256 of its bytes ("dir" for a
    /// folder).
    fn snapshot(&self) -> BTreeMap<String, String> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                if p.is_dir() {
                    out.insert(rel, "dir".into());
                    walk(root, &p, out);
                } else {
                    out.insert(rel, io::sha256_file(&p).unwrap());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(self.dir.path(), self.dir.path(), &mut out);
        out
    }

    /// A small gray `[1, 16, 16]` NPY picture with values in [0, 1].
    fn npy_picture(&self, rel: &str, seed: usize) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let a = ndarray::Array3::from_shape_fn((1, 16, 16), |(_, y, x)| {
            ((x * 7 + y * 3 + seed * 11) % 17) as f32 / 16.0
        });
        io::npy::write_npy(&p, &a).unwrap();
    }

    /// A training run of a few steps of the toy MLP on 2-D Gaussian data.
    fn train_run(&self, rel: &str, steps: u64) {
        self.ok(&[
            "train",
            "--data",
            "gaussian2d:256",
            "--preset",
            "toy2d",
            "--steps",
            &steps.to_string(),
            "--out",
            rel,
        ]);
    }
}

/// Files of `after` that `before` lacks, and those that changed, outside `owned` (a prefix).
fn changes_outside(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    owned: &str,
) -> Vec<String> {
    after
        .iter()
        .filter(|(k, v)| !k.starts_with(owned) && before.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(
            before
                .keys()
                .filter(|k| !k.starts_with(owned) && !after.contains_key(*k))
                .cloned(),
        )
        .collect()
}

const CT_FAST: [&str; 8] = [
    "--size", "16", "--views", "4", "--angles", "12", "--noise", "none",
];

fn ct_fbp<'a>(gt: &'a str, out: &'a str) -> Vec<&'a str> {
    let mut v = vec!["reconstruct", "ct", "--ground-truth", gt];
    v.extend(CT_FAST);
    v.extend(["--method", "fbp", "--out", out]);
    v
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

// ------------------------------------------------------------------------------------ export

/// `export RUN --out DIR` used to delete DIR recursively, whatever it held: `--out .`, the run
/// itself, the run's parent, a file. Now each is refused and nothing changes.
#[test]
fn export_never_deletes_what_it_did_not_write() {
    let s = Sandbox::new();
    s.train_run("runs/run", 5);
    std::fs::write(s.path("runs/notes.txt"), "mine").unwrap();
    std::fs::write(s.path("keep.txt"), "mine").unwrap();
    std::fs::create_dir(s.path("photos")).unwrap();
    std::fs::write(s.path("photos/a.png"), "not really a png").unwrap();
    s.refused(
        &["export", "runs/run", "--out", "."],
        &["--out .", "contains the input"],
    );
    s.refused(
        &["export", "runs/run", "--out", "runs/run"],
        &["--out runs/run", "is the input"],
    );
    s.refused(
        &["export", "runs/run", "--out", "runs"],
        &["--out runs", "contains the input"],
    );
    s.refused(
        &["export", "runs/run", "--out", "runs/run/model2"],
        &["lies inside the input"],
    );
    s.refused(
        &["export", "runs/run", "--out", "keep.txt"],
        &["keep.txt", "not a folder"],
    );
    s.refused(
        &["export", "runs/run", "--out", "photos"],
        &["photos", "not empty", "a.png"],
    );
    // A new folder, then an earlier export: refused without --overwrite, replaced with it, and
    // nothing is left beside it.
    s.ok(&["export", "runs/run", "--out", "m"]);
    s.refused(&["export", "runs/run", "--out", "m"], &["--overwrite"]);
    let before = s.snapshot();
    s.ok(&["export", "runs/run", "--out", "m", "--overwrite"]);
    let after = s.snapshot();
    let changed = changes_outside(&before, &after, "m/");
    assert!(changed.is_empty(), "{changed:?}");
    let mut names: Vec<String> = std::fs::read_dir(s.path("m"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [".scoreinv-output.json", "config.json", "model.safetensors"]
    );
    let top: Vec<String> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(top.is_empty(), "left behind: {top:?}");
    // A user's file put into an earlier export is never deleted: the export is refused.
    std::fs::write(s.path("m/README"), "mine").unwrap();
    s.refused(
        &["export", "runs/run", "--out", "m", "--overwrite"],
        &["README", "no export wrote"],
    );
}

// ------------------------------------------------------------------- outputs against inputs

#[test]
fn outputs_never_overwrite_inputs() {
    let s = Sandbox::new();
    s.npy_picture("gt/a.npy", 1);
    s.npy_picture("gt/b.npy", 2);
    s.npy_picture("gt.npy", 3);
    s.refused(&ct_fbp("gt", "gt"), &["--out", "is the input gt"]);
    s.refused(&ct_fbp("gt", "gt/recon"), &["lies inside the input gt"]);
    s.refused(&ct_fbp("gt/a.npy", "."), &["contains the input"]);
    s.refused(
        &[
            "simulate",
            "ct",
            "--ground-truth",
            "gt.npy",
            "--out",
            "gt.npy",
        ],
        &["--out", "is the input gt.npy"],
    );
    // An existing output file is replaced only with --overwrite, and never when it is an input.
    s.ok(&[
        "simulate",
        "ct",
        "--ground-truth",
        "gt.npy",
        "--out",
        "y.npy",
    ]);
    s.refused(
        &[
            "simulate",
            "ct",
            "--ground-truth",
            "gt.npy",
            "--out",
            "y.npy",
        ],
        &["y.npy exists", "--overwrite"],
    );
    s.ok(&[
        "simulate",
        "ct",
        "--ground-truth",
        "gt.npy",
        "--out",
        "y.npy",
        "--overwrite",
    ]);
    s.refused(
        &[
            "simulate",
            "ct",
            "--ground-truth",
            "gt.npy",
            "--out",
            "gt.npy",
            "--overwrite",
        ],
        &["is the input gt.npy"],
    );
}

/// `reconstruct` into a folder it does not own is refused; into its own earlier output it needs
/// --overwrite, which removes exactly the files of the earlier run (no stale per-case files of
/// another study beside the new metrics) and keeps everything else.
#[test]
fn reconstruct_owns_its_output_folder() {
    let s = Sandbox::new();
    std::fs::create_dir(s.path("busy")).unwrap();
    std::fs::write(s.path("busy/thesis.tex"), "mine").unwrap();
    s.refused(
        &ct_fbp("phantom:shepp-logan", "busy"),
        &["busy", "not empty", "thesis.tex"],
    );
    s.ok(&ct_fbp("phantom:ellipses:0..3", "out"));
    assert!(s.path("out/ellipses_2_fbp.npy").exists());
    std::fs::write(s.path("out/notes.txt"), "mine").unwrap();
    s.refused(
        &ct_fbp("phantom:shepp-logan", "out"),
        &["--overwrite", "--resume"],
    );
    let before = s.snapshot();
    let mut again = ct_fbp("phantom:shepp-logan", "out");
    again.push("--overwrite");
    s.ok(&again);
    let after = s.snapshot();
    let changed = changes_outside(&before, &after, "out/");
    assert!(changed.is_empty(), "{changed:?}");
    assert!(
        !s.path("out/ellipses_2_fbp.npy").exists(),
        "stale case file"
    );
    assert!(s.path("out/shepp_logan_fbp.npy").exists());
    assert_eq!(
        std::fs::read_to_string(s.path("out/notes.txt")).unwrap(),
        "mine"
    );
    let m = json(&s.path("out/metrics.json"));
    assert_eq!(m["records"].as_array().unwrap().len(), 1);
    // Another command's folder is not taken over, even with --overwrite.
    s.ok(&["merge", "out", "--out", "merged"]);
    let mut cmd = ct_fbp("phantom:shepp-logan", "merged");
    cmd.push("--overwrite");
    s.refused(
        &cmd,
        &["scoreinv merge", "not of `scoreinv reconstruct ct`"],
    );
}

// ------------------------------------------------------------------------------- crashes

fn write_raw_npy(path: &Path, descr: &str, shape: &str, body: &[u8]) {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(body);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn bad_sizes_are_errors_not_panics_or_aborts() {
    let s = Sandbox::new();
    write_raw_npy(&s.path("empty.npy"), "<f4", "(0, 64)", &[]);
    for cmd in [
        ct_fbp("empty.npy", "o1"),
        vec![
            "simulate",
            "ct",
            "--ground-truth",
            "empty.npy",
            "--size",
            "16",
            "--out",
            "y.npy",
        ],
    ] {
        s.refused(&cmd, &["empty.npy"]);
    }
    // A header that declares 10¹⁰ values over a 64-byte body.
    write_raw_npy(&s.path("liar.npy"), "<f4", "(100000, 100000)", &[0u8; 64]);
    s.refused(&ct_fbp("liar.npy", "o2"), &["liar.npy"]);
    std::fs::create_dir(s.path("liars")).unwrap();
    std::fs::copy(s.path("liar.npy"), s.path("liars/liar.npy")).unwrap();
    s.refused(
        &["train", "--data", "liars", "--steps", "1", "--out", "run"],
        &["liar.npy"],
    );
    s.npy_picture("ok.npy", 0);
    for size in ["100000", "0", "1", "-5"] {
        let mut cmd = vec!["reconstruct", "ct", "--ground-truth", "ok.npy", "--size"];
        cmd.push(size);
        cmd.extend(["--method", "fbp", "--out", "o3"]);
        s.refused(&cmd, &["--size", size]);
        s.refused(
            &[
                "simulate",
                "ct",
                "--ground-truth",
                "ok.npy",
                "--size",
                size,
                "--out",
                "y.npy",
            ],
            &["--size"],
        );
        s.refused(
            &[
                "train",
                "--data",
                "phantom:ellipses:4",
                "--size",
                size,
                "--out",
                "run",
            ],
            &["--size"],
        );
    }
}

/// A DICOM file whose Rows is 0 (patched into pydicom's CT_small.dcm from `make fixtures`).
#[test]
fn dicom_with_zero_rows_is_refused() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fixtures/io/CT_small.dcm");
    assert!(
        src.exists(),
        "fixture {} is missing: run `make fixtures`",
        src.display()
    );
    let mut bytes = std::fs::read(&src).unwrap();
    // Explicit VR little endian: (0028,0010) "US", length 2, value.
    let tag = [0x28, 0x00, 0x10, 0x00, b'U', b'S', 0x02, 0x00];
    let at = bytes
        .windows(tag.len())
        .position(|w| w == tag)
        .expect("Rows element in CT_small.dcm");
    bytes[at + 8] = 0;
    bytes[at + 9] = 0;
    let s = Sandbox::new();
    std::fs::write(s.path("rows0.dcm"), bytes).unwrap();
    s.refused(&ct_fbp("rows0.dcm", "o"), &["rows0.dcm"]);
}

// ------------------------------------------------------------------------- mixed runs

fn shard_cmd<'a>(views: &'a str, shard: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "reconstruct",
        "ct",
        "--ground-truth",
        "phantom:ellipses:0..4",
        "--size",
        "16",
        "--angles",
        "60",
        "--views",
        views,
        "--noise",
        "none",
        "--method",
        "fbp",
        "--shard",
        shard,
        "--out",
        out,
    ]
}

#[test]
fn merge_refuses_shards_that_do_not_belong_together() {
    let s = Sandbox::new();
    s.ok(&shard_cmd("23", "0/3", "p0"));
    s.ok(&shard_cmd("60", "1/3", "p1"));
    s.ok(&shard_cmd("23", "1/3", "q1"));
    s.ok(&shard_cmd("23", "2/3", "q2"));
    // 23 views beside 60 views.
    s.refused(
        &["merge", "p0", "p1", "q2", "--out", "m"],
        &["task_settings.views", "23", "60", "--allow-mixed"],
    );
    // An incomplete set names the missing part.
    s.refused(
        &["merge", "p0", "q2", "--out", "m"],
        &["incomplete", "1/3", "--allow-partial"],
    );
    s.refused(&["merge", "p0", "q1", "q1", "q2", "--out", "m"], &["twice"]);
    // The output may not be one of the studies, nor hold them.
    s.refused(
        &["merge", "p0", "q1", "q2", "--out", "p0"],
        &["is the input p0"],
    );
    s.refused(
        &["merge", "p0", "q1", "q2", "--out", "."],
        &["contains the input"],
    );
    s.ok(&["merge", "p0", "q1", "q2", "--out", "m"]);
    let m = json(&s.path("m/metrics.json"));
    assert_eq!(m["complete"], true);
    assert_eq!(m["records"].as_array().unwrap().len(), 4);
    assert_eq!(m["settings"]["task_settings"]["views"], 23);
    // With --allow-partial the gap is recorded.
    s.ok(&["merge", "p0", "q2", "--out", "m2", "--allow-partial"]);
    assert_eq!(json(&s.path("m2/metrics.json"))["complete"], false);
}

#[test]
fn duplicate_methods_and_ambiguous_folders_are_refused() {
    let s = Sandbox::new();
    let mut cmd = ct_fbp("phantom:shepp-logan", "o");
    let i = cmd.iter().position(|a| *a == "fbp").unwrap();
    cmd[i] = "fbp,tv,FBP";
    s.refused(&cmd, &["--method", "named twice"]);
    // A folder with a DICOM file and a picture.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fixtures/io/CT_small.dcm");
    assert!(
        src.exists(),
        "fixture {} is missing: run `make fixtures`",
        src.display()
    );
    std::fs::create_dir(s.path("mixed")).unwrap();
    std::fs::copy(&src, s.path("mixed/ct.dcm")).unwrap();
    s.npy_picture("mixed/pic.npy", 0);
    s.refused(&ct_fbp("mixed", "o"), &["mixed", "pic.npy", "ct.dcm"]);
    s.refused(
        &["train", "--data", "mixed", "--steps", "1", "--out", "run"],
        &["pic.npy", "ct.dcm"],
    );
}

#[test]
fn resume_to_a_step_already_reached_says_so() {
    let s = Sandbox::new();
    s.train_run("run", 20);
    let msg = s.refused(
        &[
            "train",
            "--data",
            "gaussian2d:256",
            "--out",
            "run",
            "--resume",
            "--steps",
            "10",
        ],
        &["already at step 20", "--steps 10"],
    );
    assert!(msg.contains("N > 20"), "{msg}");
    s.refused(
        &[
            "train",
            "--data",
            "gaussian2d:256",
            "--out",
            "run",
            "--resume",
        ],
        &["already at step 20"],
    );
    // A fresh run into a folder that holds anything is refused.
    std::fs::create_dir(s.path("busy")).unwrap();
    std::fs::write(s.path("busy/x"), "mine").unwrap();
    s.refused(
        &[
            "train",
            "--data",
            "gaussian2d:256",
            "--steps",
            "2",
            "--out",
            "busy",
        ],
        &["busy", "not empty"],
    );
}

// --------------------------------------------------------------------------- interrupts

/// A child process killed when dropped, so a failing test leaves nothing running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

fn sigint(child: &Child) {
    // SAFETY: kill(2) on a child process we own.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(rc, 0, "kill -INT failed");
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(
            t0.elapsed() < limit,
            "the process did not exit in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigint_during_training_writes_a_checkpoint_and_exits_130() {
    let s = Sandbox::new();
    let mut child = s
        .command(&[
            "train",
            "--data",
            "gaussian2d:256",
            "--preset",
            "toy2d",
            "--steps",
            "100000000",
            "--out",
            "run",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(Running)
        .unwrap();
    // checkpoint.json is written at step 0 when the loop starts; then let it take steps.
    wait_for("the first checkpoint", Duration::from_secs(120), || {
        s.path("run/checkpoint.json").exists()
    });
    std::thread::sleep(Duration::from_millis(1500));
    sigint(&child);
    let st = wait_exit(&mut child, Duration::from_secs(60));
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(st.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted at step") && err.contains("--resume"),
        "{err}"
    );
    let step = json(&s.path("run/checkpoint.json"))["step"]
        .as_u64()
        .unwrap();
    assert!(step > 0, "the interrupt kept no work (step {step})");
    // It continues from there.
    let target = (step + 3).to_string();
    let out = s.ok(&[
        "train",
        "--data",
        "gaussian2d:256",
        "--out",
        "run",
        "--resume",
        "--steps",
        &target,
    ]);
    assert!(
        out.contains(&format!("trained 3 steps (now at step {target})")),
        "{out}"
    );
}

fn interruptible_study(out: &str) -> Vec<String> {
    [
        "reconstruct",
        "ct",
        "--ground-truth",
        "phantom:ellipses:0..40",
        "--size",
        "32",
        "--noise",
        "gaussian:0.01",
        "--method",
        "fbp,tv",
        "--tv-iters",
        "2000",
        "--out",
        out,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn sigint_during_reconstruct_keeps_the_cases_done_and_resume_finishes_them() {
    let s = Sandbox::new();
    let args = interruptible_study("r");
    let refs: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
    let mut child = s
        .command(&refs)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(Running)
        .unwrap();
    wait_for("the first case", Duration::from_secs(120), || {
        s.path("r/ellipses_0.png").exists()
    });
    sigint(&child);
    let st = wait_exit(&mut child, Duration::from_secs(120));
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(st.code(), Some(130), "{err}");
    assert!(
        err.contains("--resume") && err.contains("metrics.json"),
        "{err}"
    );
    let m = json(&s.path("r/metrics.json"));
    assert_eq!(m["complete"], false);
    let done = m["records"].as_array().unwrap().len() / 2;
    assert!((1..40).contains(&done), "{done} cases done");
    // Every case in the metrics has its files; none beyond them was started.
    for i in 0..40 {
        let f = s.path(&format!("r/ellipses_{i}_tv.npy"));
        assert_eq!(f.exists(), i < done, "case {i}");
    }
    // A merge of the interrupted study is refused, --resume finishes it, and the result equals
    // an uninterrupted run file for file.
    s.refused(&["merge", "r", "--out", "m"], &["incomplete", "--resume"]);
    let mut resume = refs.clone();
    resume.push("--resume");
    s.ok(&resume);
    let full = interruptible_study("full");
    let full: Vec<&str> = full.iter().map(|a| a.as_str()).collect();
    s.ok(&full);
    let m = json(&s.path("r/metrics.json"));
    assert_eq!(m["complete"], true);
    let strip = |v: &serde_json::Value| -> Vec<(String, String, String)> {
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["case"].to_string(),
                    r["method"].to_string(),
                    r["psnr_db"].to_string(),
                )
            })
            .collect()
    };
    assert_eq!(strip(&m), strip(&json(&s.path("full/metrics.json"))));
    for i in 0..40 {
        for m in ["fbp", "tv"] {
            let name = format!("ellipses_{i}_{m}.npy");
            assert_eq!(
                io::sha256_file(&s.path(&format!("r/{name}"))).unwrap(),
                io::sha256_file(&s.path(&format!("full/{name}"))).unwrap(),
                "{name}"
            );
        }
    }
}

#[test]
fn a_second_sigint_exits_at_once() {
    let s = Sandbox::new();
    let mut child = s
        .command(&[
            "reconstruct",
            "ct",
            "--ground-truth",
            "phantom:shepp-logan",
            "--size",
            "64",
            "--method",
            "tv",
            "--tv-iters",
            "100000000",
            "--out",
            "r",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Running)
        .unwrap();
    wait_for("the output folder", Duration::from_secs(120), || {
        s.path("r/.scoreinv-output.json").exists()
    });
    sigint(&child);
    // The first one waits for the batch in flight (here: a very long TV run).
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited on the first SIGINT"
    );
    sigint(&child);
    let st = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(st.code(), Some(130));
}

// ------------------------------------------------------------------------- readers, messages

/// Float TIFF pictures are read by every command, training included.
#[test]
fn float_tiff_folders_train_like_everywhere_else() {
    let s = Sandbox::new();
    std::fs::create_dir(s.path("tifs")).unwrap();
    for i in 0..4 {
        let a =
            ndarray::Array3::from_shape_fn((1, 8, 8), |(_, y, x)| ((x + y + i) % 9) as f32 / 8.0);
        io::write_image(s.path(&format!("tifs/{i}.tif")), &Image::chw(a)).unwrap();
    }
    let out = s.run(&["train", "--data", "tifs", "--steps", "1", "--out", "run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("[1, 8, 8]"), "{err}");
}

#[test]
fn messages_name_the_flag_and_value_once() {
    let s = Sandbox::new();
    // Missing file: the OS error once.
    let e = s.refused(&ct_fbp("missing.npy", "o"), &["missing.npy"]);
    assert!(e.matches("os error 2").count() <= 1, "{e}");
    // NaN and Inf, with plain coordinates.
    let mut a = ndarray::Array4::<f32>::zeros((1, 1, 4, 4));
    a[[0, 0, 1, 2]] = f32::INFINITY;
    io::npy::write_npy(&s.path("inf.npy"), &a).unwrap();
    let e = s.refused(&ct_fbp("inf.npy", "o"), &["inf.npy", "+Inf", "[0, 1, 2]"]);
    assert!(!e.contains("IxDyn") && !e.contains("NaN and"), "{e}");
    a[[0, 0, 1, 2]] = f32::NAN;
    io::npy::write_npy(&s.path("nan.npy"), &a).unwrap();
    let e = s.refused(&ct_fbp("nan.npy", "o"), &["nan.npy", "1 NaN", "[0, 1, 2]"]);
    assert!(!e.contains("IxDyn"), "{e}");
    // An RGBA picture is read as RGB, and the refusal says so.
    image::RgbaImage::from_pixel(8, 8, image::Rgba([10, 20, 30, 128]))
        .save(s.path("rgba.png"))
        .unwrap();
    s.refused(
        &ct_fbp("rgba.png", "o"),
        &["rgba.png", "RGBA", "3 channels"],
    );
    // Zero and negative counts name the flag.
    for (flag, value) in [
        ("--steps", "0"),
        ("--steps", "-1"),
        ("--samples", "0"),
        ("--batch", "-3"),
    ] {
        let mut cmd = ct_fbp("phantom:shepp-logan", "o");
        cmd.extend([flag, value]);
        let e = s.refused(&cmd, &[flag, value]);
        assert!(!e.contains("unexpected argument"), "{e}");
    }
    // Negative HU windows can be typed both ways.
    for w in [vec!["--window=-160,240"], vec!["--window", "-160", "240"]] {
        let mut cmd = vec![
            "simulate",
            "ct",
            "--ground-truth",
            "phantom:shepp-logan",
            "--size",
            "16",
            "--out",
        ];
        let name = format!("w{}.npy", w.len());
        cmd.push(&name);
        cmd.extend(w.iter().copied());
        s.ok(&cmd);
    }
    s.refused(
        &[
            "simulate",
            "ct",
            "--ground-truth",
            "phantom:shepp-logan",
            "--out",
            "x.npy",
            "--window",
            "240,-160",
        ],
        &["--window", "lo must be below hi"],
    );
}

/// `likelihood --out` naming a folder fails at once, before anything is computed.
#[test]
fn likelihood_checks_its_output_first() {
    let s = Sandbox::new();
    s.train_run("run", 5);
    std::fs::create_dir(s.path("dir")).unwrap();
    s.refused(
        &[
            "likelihood",
            "--model",
            "run/model",
            "--data",
            "gaussian2d:64",
            "--out",
            "dir",
        ],
        &["--out", "dir", "is a folder"],
    );
    s.refused(
        &[
            "likelihood",
            "--model",
            "run/model",
            "--data",
            "gaussian2d:64",
            "--out",
            "run/model/config.json",
        ],
        &["lies inside the input run/model"],
    );
}

// -------------------------------------------------------------- cases that already worked

#[test]
fn earlier_refusals_still_hold() {
    let s = Sandbox::new();
    let mut cmd = ct_fbp("phantom:shepp-logan", "o");
    cmd.extend(["--method", "score"]);
    s.refused(&cmd, &["--method"]);
    s.refused(&ct_fbp("phantom:unknown", "o"), &["unknown phantom"]);
    let mut cmd = ct_fbp("phantom:shepp-logan", "o");
    let i = cmd.iter().position(|a| *a == "none").unwrap();
    cmd[i] = "laplace:3";
    s.refused(&cmd, &["laplace"]);
    s.refused(
        &[
            "reconstruct",
            "ct",
            "--ground-truth",
            "phantom:shepp-logan",
            "--method",
            "score",
            "--model",
            "nowhere",
            "--out",
            "o",
        ],
        &["nowhere"],
    );
    s.refused(&["export", "nowhere", "--out", "m"], &["nowhere"]);
    s.refused(
        &["train", "--data", "gaussian2d:64", "--out", "r", "--resume"],
        &["no checkpoint.json"],
    );
}
