//! CI's run of the one entry point: `hypnos-bench compare --smoke` against the debug `hypnos`
//! binary (built here when missing), with whichever peers are installed. It must print the
//! table and write the results file; it takes seconds.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The debug `hypnos` binary, built with cargo when it is not there.
fn hypnos_debug_binary() -> PathBuf {
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("debug").join("hypnos");
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .current_dir(&root)
            .args(["build", "-p", "hypnos"])
            .status()
            .expect("run cargo build -p hypnos");
        assert!(st.success(), "cargo build -p hypnos failed");
    }
    assert!(bin.is_file(), "{} missing", bin.display());
    bin
}

#[test]
fn compare_smoke_prints_and_writes_the_table() {
    let hypnos = hypnos_debug_binary();
    let dir = tempfile::tempdir().expect("tempdir");
    let results = dir.path().join("results");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_hypnos-bench"))
        .args(["compare", "--smoke", "--no-install", "--name", "ci"])
        .arg("--hypnos-bin")
        .arg(&hypnos)
        .arg("--results-dir")
        .arg(&results)
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .output()
        .expect("run hypnos-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "compare failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "smoke run took {:?}",
        started.elapsed()
    );
    for row in [
        "ingest: samples/s",
        "storage: bytes per sample",
        "query rate range: median (ms)",
        "compaction merge: samples/s per core",
        "compaction downsample: samples/s per core",
        "Hypnos/Prometheus",
        "Hypnos/VictoriaMetrics",
    ] {
        assert!(stdout.contains(row), "no {row:?} in\n{stdout}");
    }
    // Hypnos measured itself: its ingest, merge and downsampling figures are numbers, not
    // `missing`.
    for row in [
        "| ingest: samples/s",
        "| compaction merge: samples/s per core",
        "| compaction downsample: samples/s per core",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no {row} row"));
        let hypnos_cell = line.split('|').nth(2).expect("Hypnos column").trim();
        assert!(
            hypnos_cell
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit()),
            "Hypnos figure of {row}: {hypnos_cell}"
        );
    }
    // Answers that differ from Prometheus' are findings for the engine, reported in the
    // table's notes; the PromQL conformance suite is the gate for them, not this smoke run.
    for l in stdout.lines().filter(|l| l.contains("DIFFERENT")) {
        eprintln!("note: {l}");
    }
    assert!(stdout.contains("rate range (`rate(node_cpu_seconds_total[5m])`): "));
    let files: Vec<_> = std::fs::read_dir(&results)
        .expect("results dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let md = std::fs::read_to_string(&files[0]).expect("results file");
    assert!(files[0].to_string_lossy().ends_with("-ci.md"));
    assert!(md.contains("Machine: ") && md.contains("cores") && md.contains("Command: "));
    assert!(md.contains("| ingest: samples/s"));
}
