//! Every workload runs at tiny sizes and the report prints a row for each: what CI
//! checks of the benchmarks (the real run is `benches/run`).

use std::process::Command;

#[test]
fn every_workload_runs_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.jsonl");
    let exe = env!("CARGO_BIN_EXE_stagecraft-bench");
    let status = Command::new(exe)
        .args(["all", "--size", "smoke", "--dir"])
        .arg(dir.path().join("work"))
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let report = Command::new(exe).arg("report").arg(&out).output().unwrap();
    assert!(report.status.success());
    let table = String::from_utf8(report.stdout).unwrap();
    for row in [
        "| base | axum hello-world | throughput",
        "| base | fsync probe |",
        "| base | sled insert + flush |",
        "| B1 | stagecraft | validate a valid form",
        "| B2 | stagecraft | alert stalled-deal",
        "| B3 | stagecraft | throughput",
        "| B4 | stagecraft D2 |",
        "| B5 | stagecraft |",
        "| B6 | stagecraft | lateness p99",
    ] {
        assert!(table.contains(row), "no row `{row}` in\n{table}");
    }
    assert!(table.contains("each fired once: yes"), "{table}");
}
