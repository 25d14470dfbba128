//! `hypnos-bench`: whole-system benchmarks. `compare` is the one entry point; `generate`
//! writes the data set as OpenMetrics text, for a look or for other tools.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use hypnos_benchmarks::compare::{CompareArgs, run};
use hypnos_benchmarks::encode::write_openmetrics;
use hypnos_benchmarks::r#gen::{Dataset, GenConfig};

#[derive(Parser)]
#[command(
    name = "hypnos-bench",
    about = "Hypnos measured side by side with Prometheus and VictoriaMetrics"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start Hypnos, Prometheus and VictoriaMetrics in turn, run the same workloads against
    /// each, print one table and write it to benchmarks/results/<date>-<name>.md.
    Compare(CompareArgs),
    /// Write the generated data set of one tenant as OpenMetrics text.
    Generate {
        #[arg(long, default_value_t = 1000)]
        series: usize,
        #[arg(long, default_value_t = 1.0)]
        hours: f64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output file; default: standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Compare(args) => {
            run(&args)?;
        }
        Cmd::Generate {
            series,
            hours,
            seed,
            out,
        } => {
            let ds = Dataset::generate(&GenConfig {
                seed,
                series,
                duration_ms: (hours * 3_600_000.0) as i64,
                ..GenConfig::default()
            });
            let mut w: Box<dyn Write> = match out {
                Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p)?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            write_openmetrics(&ds, 0, &mut w)?;
            w.flush()?;
        }
    }
    Ok(())
}
