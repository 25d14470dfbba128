//! Runs inputs through a fuzz target's code without libFuzzer, on any toolchain:
//!
//! ```text
//! cargo run --release --bin replay -- promql_parse_plan corpus/promql_parse_plan
//! ```
//!
//! Each argument after the target name is a file or a folder of files. A panic aborts the
//! run naming the input; at the end the counts of inputs, successes and errors are printed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

fn inputs(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for e in entries {
            inputs(&e, out)?;
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(target) = args.next() else {
        eprintln!("usage: replay <promql_parse_plan|remote_write_decode> <file or folder>...");
        return ExitCode::from(2);
    };
    let mut files = Vec::new();
    for a in args {
        if let Err(e) = inputs(Path::new(&a), &mut files) {
            eprintln!("cannot read {a}: {e}");
            return ExitCode::from(2);
        }
    }
    let started = Instant::now();
    let (mut ok, mut errors, mut internal) = (0usize, 0usize, 0usize);
    for f in &files {
        let data = match std::fs::read(f) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("cannot read {}: {e}", f.display());
                return ExitCode::from(2);
            }
        };
        if std::env::var_os("REPLAY_VERBOSE").is_some() {
            eprintln!("{}", f.display());
        }
        match target.as_str() {
            "promql_parse_plan" => {
                let o = hypnos_fuzz::promql_parse_plan(&data);
                ok += o.ok;
                errors += o.errors;
                internal += o.internal_errors;
            }
            "remote_write_decode" => {
                if hypnos_fuzz::remote_write_decode(&data) {
                    ok += 1;
                } else {
                    errors += 1;
                }
            }
            other => {
                eprintln!("unknown target {other:?}");
                return ExitCode::from(2);
            }
        }
    }
    println!(
        "{target}: {} inputs in {:.1?}: {ok} ok, {errors} errors ({internal} internal), no panic",
        files.len(),
        started.elapsed()
    );
    ExitCode::SUCCESS
}
