//! The kill -9 delivery harness, small: workers killed with SIGKILL in the middle of
//! delivery lose nothing, and repeat no more than the deliveries in flight per kill.
//! (`tests/crash/notify-run` runs it larger and prints the same figures.)

use std::process::Command;

#[test]
fn kill_9_during_delivery_loses_nothing_and_repeats_only_the_crash_window() {
    let output = Command::new(env!("CARGO_BIN_EXE_stagecraft-notify-crash"))
        .args(["--notifications", "300", "--kills", "4", "--max-delay-ms", "150"])
        .output()
        .expect("run the harness");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stdout.lines().last().unwrap_or_default();
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(last.contains("lost=0") && last.contains("received_distinct=300"), "{last}");
}
