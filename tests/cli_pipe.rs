//! Output into a pipe whose reader has gone (`scoreinv ... | head -1`) ends the program as it
//! ends `cat`: no panic message ("failed printing to stdout: Broken pipe").
use std::io::Read;
use std::process::{Command, Stdio};

#[test]
fn a_closed_stdout_pipe_is_not_a_panic() {
    let exe = env!("CARGO_BIN_EXE_scoreinv");
    // The read end is closed before the program (which loads libtorch first) prints a line.
    let mut child = Command::new(exe)
        .arg("doctor")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert!(!status.success(), "the output went nowhere, yet: {status}");
    // Control: read to the end, the same command prints its report and succeeds.
    let full = Command::new(exe).arg("doctor").output().unwrap();
    assert!(full.status.success() && !full.stdout.is_empty());
}
