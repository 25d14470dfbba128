//! The comparison table: one row per figure, one column per system, and the ratios
//! Hypnos/Prometheus and Hypnos/VictoriaMetrics. A figure a system cannot produce is printed
//! as `missing (reason)`, never left out.

use std::fmt::Write as _;

/// The systems compared, in column order.
pub const SYSTEMS: [&str; 3] = ["Hypnos", "Prometheus", "VictoriaMetrics"];

/// One measured figure of one system.
#[derive(Clone, Debug, PartialEq)]
pub enum Figure {
    Value(f64),
    Missing(String),
}

impl Figure {
    pub fn missing(reason: impl Into<String>) -> Self {
        Figure::Missing(reason.into())
    }

    pub fn value(&self) -> Option<f64> {
        match self {
            Figure::Value(v) => Some(*v),
            Figure::Missing(_) => None,
        }
    }

    pub fn render(&self) -> String {
        match self {
            Figure::Value(v) => format_number(*v),
            Figure::Missing(r) => format!("missing ({r})"),
        }
    }
}

/// A row: the figure's name with its unit, and one [`Figure`] per system of [`SYSTEMS`].
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub name: String,
    pub figures: [Figure; 3],
}

impl Row {
    pub fn new(name: impl Into<String>, figures: [Figure; 3]) -> Self {
        Self {
            name: name.into(),
            figures,
        }
    }

    /// Hypnos / system `i` (1: Prometheus, 2: VictoriaMetrics).
    pub fn ratio(&self, i: usize) -> Figure {
        ratio(&self.figures[0], &self.figures[i], SYSTEMS[i])
    }
}

/// `a / b`, or why not.
pub fn ratio(a: &Figure, b: &Figure, b_name: &str) -> Figure {
    match (a, b) {
        (Figure::Missing(_), _) => Figure::missing("no Hypnos figure"),
        (_, Figure::Missing(_)) => Figure::missing(format!("no {b_name} figure")),
        (Figure::Value(a), Figure::Value(b)) if *b == 0.0 => {
            if *a == 0.0 {
                Figure::Value(1.0)
            } else {
                Figure::missing(format!("{b_name} is 0"))
            }
        }
        (Figure::Value(a), Figure::Value(b)) => Figure::Value(a / b),
    }
}

/// Up to four significant digits, no exponent for everyday magnitudes.
pub fn format_number(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-4..1e15).contains(&a) {
        format!("{v:.3e}")
    } else if a >= 1000.0 {
        // Thousands separators make big figures readable.
        let s = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 { format!("-{out}") } else { out }
    } else {
        let digits = (3 - a.log10().floor() as i32).max(0) as usize;
        format!("{v:.digits$}")
    }
}

/// The table as Markdown.
pub fn render_table(rows: &[Row]) -> String {
    let header = [
        "figure".to_string(),
        SYSTEMS[0].into(),
        SYSTEMS[1].into(),
        SYSTEMS[2].into(),
        format!("{}/{}", SYSTEMS[0], SYSTEMS[1]),
        format!("{}/{}", SYSTEMS[0], SYSTEMS[2]),
    ];
    let body: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let ratio = |i| match r.ratio(i) {
                Figure::Value(v) => format!("{}x", format_number(v)),
                m => m.render(),
            };
            [
                r.name.clone(),
                r.figures[0].render(),
                r.figures[1].render(),
                r.figures[2].render(),
                ratio(1),
                ratio(2),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.len());
    for r in &body {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String; 6]| {
        out.push('|');
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w - c.chars().count();
            if i == 0 {
                let _ = write!(out, " {c}{} |", " ".repeat(pad));
            } else {
                let _ = write!(out, " {}{c} |", " ".repeat(pad));
            }
        }
        out.push('\n');
    };
    line(&mut out, &header);
    out.push('|');
    for (i, w) in widths.iter().enumerate() {
        let dashes = "-".repeat(*w);
        if i == 0 {
            let _ = write!(out, "{dashes}--|");
        } else {
            let _ = write!(out, "-{dashes}:|");
        }
    }
    out.push('\n');
    for r in &body {
        line(&mut out, r);
    }
    out
}

/// Cores, memory and CPU model of this machine.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    format!(
        "{cores} cores, {:.1} GiB memory, CPU: {model}",
        mem_kib as f64 / (1 << 20) as f64
    )
}

/// Today's date (UTC) as `YYYY-MM-DD`.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    civil_date(secs.div_euclid(86_400))
}

/// Days since 1970-01-01 to `YYYY-MM-DD` (Howard Hinnant's civil_from_days).
pub fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_missing() {
        let v = Figure::Value;
        let r = Row::new("x", [v(10.0), v(4.0), Figure::missing("not installed")]);
        assert_eq!(r.ratio(1), v(2.5));
        assert_eq!(r.ratio(2), Figure::missing("no VictoriaMetrics figure"));
        let r = Row::new("y", [Figure::missing("422"), v(1.0), v(2.0)]);
        assert_eq!(r.ratio(1), Figure::missing("no Hypnos figure"));
        assert_eq!(ratio(&v(0.0), &v(0.0), "P"), v(1.0));
        assert_eq!(ratio(&v(1.0), &v(0.0), "P"), Figure::missing("P is 0"));
    }

    #[test]
    fn numbers() {
        assert_eq!(format_number(1234567.8), "1,234,568");
        assert_eq!(format_number(-1234.0), "-1,234");
        assert_eq!(format_number(1.23456), "1.235");
        assert_eq!(format_number(0.5), "0.5000");
        assert_eq!(format_number(12.0), "12.00");
        assert_eq!(format_number(0.0), "0");
        assert_eq!(format_number(1e-6), "1.000e-6");
    }

    #[test]
    fn table_has_every_row_and_cell() {
        let rows = vec![
            Row::new(
                "ingest samples/s",
                [
                    Figure::Value(300_000.0),
                    Figure::Value(100_000.0),
                    Figure::Value(600_000.0),
                ],
            ),
            Row::new(
                "compaction samples/s/core",
                [
                    Figure::missing("compaction workload not built yet"),
                    Figure::missing("not measured"),
                    Figure::missing("not measured"),
                ],
            ),
        ];
        let t = render_table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("| figure"));
        assert!(
            lines[0].contains("Hypnos/Prometheus") && lines[0].contains("Hypnos/VictoriaMetrics")
        );
        assert!(lines[1].starts_with("|---") && lines[1].ends_with(":|"));
        assert!(
            lines[2].contains("300,000")
                && lines[2].contains("3.000x")
                && lines[2].contains("0.5000x")
        );
        assert!(
            lines[3].contains("missing (compaction workload not built yet)")
                && lines[3].contains("missing (no Hypnos figure)")
        );
        let widths: Vec<usize> = lines.iter().map(|l| l.chars().count()).collect();
        assert!(
            widths.iter().all(|w| *w == widths[0]),
            "aligned: {widths:?}"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(19_675), "2023-11-14");
        assert_eq!(civil_date(11_016), "2000-02-29");
    }
}
