//! The kill -9 harness, briefly: ten rounds of killing a writer must lose and tear
//! nothing. `tests/crash/run` at the top of the repository runs the long version.

use std::process::Command;

#[test]
fn ten_kill_rounds_lose_and_tear_nothing() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let output = Command::new(env!("CARGO_BIN_EXE_stagecraft-crash"))
        .args(["--rounds", "10", "--seed", "20240611", "--full-every", "5"])
        .arg("--dir")
        .arg(dir.path())
        .output()
        .expect("the harness runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stdout.lines().last().unwrap_or_default();
    assert!(output.status.success(), "the harness failed\n{stdout}\n{stderr}");
    let fields: Vec<(&str, u64)> = last
        .split(' ')
        .filter_map(|field| {
            let (name, value) = field.split_once('=')?;
            Some((name, value.parse().ok()?))
        })
        .collect();
    let names: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, ["rounds", "acknowledged", "lost", "torn"], "{last}");
    assert_eq!(fields[0].1, 10, "{last}");
    assert!(fields[1].1 > 0, "nothing was acknowledged: {stdout}");
    assert_eq!((fields[2].1, fields[3].1), (0, 0), "{stdout}");
}
