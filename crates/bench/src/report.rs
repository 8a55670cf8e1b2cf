//! The table: one row per figure (median, min–max over repeats), with the ratios the
//! targets ask for, computed from figures of the same run.

use std::fmt::Write as _;

use serde_json::Value;

use crate::common::summary;

struct Row {
    bench: String,
    subject: String,
    what: String,
    unit: String,
    median: f64,
    min: f64,
    max: f64,
    repeats: usize,
    durability: String,
    size: String,
    rss_kib: u64,
    extra: Value,
}

fn rows(results: &str) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for line in results.lines().filter(|line| line.trim_start().starts_with('{')) {
        let value: Value = serde_json::from_str(line)?;
        let text = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
        let values: Vec<f64> = value
            .get("values")
            .and_then(Value::as_array)
            .map(|values| values.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        let (median, min, max) = summary(&values);
        rows.push(Row {
            bench: text("bench"),
            subject: text("subject"),
            what: text("what"),
            unit: text("unit"),
            median,
            min,
            max,
            repeats: values.len(),
            durability: text("durability"),
            size: text("size"),
            rss_kib: value.get("rss_kib").and_then(Value::as_u64).unwrap_or(0),
            extra: value.get("extra").cloned().unwrap_or(Value::Null),
        });
    }
    Ok(rows)
}

fn number(value: f64) -> String {
    if !value.is_finite() {
        return "–".into();
    }
    let magnitude = value.abs();
    if magnitude >= 100.0 {
        let whole = value.round() as i64;
        let digits = whole.abs().to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if whole < 0 { format!("-{grouped}") } else { grouped }
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else if magnitude >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

fn find<'r>(rows: &'r [Row], bench: &str, subject: &str, what: &str) -> Option<&'r Row> {
    rows.iter().find(|r| r.bench == bench && r.subject == subject && r.what.starts_with(what))
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

/// What the row is compared with.
fn ratio(rows: &[Row], row: &Row) -> String {
    let ours_b4 = find(rows, "B4", "stagecraft D2", "gated");
    let hello = find(rows, "base", "axum hello-world", "throughput");
    let fsync = find(rows, "base", "fsync probe", "append");
    let target_ns = row.extra.get("target_ns").and_then(Value::as_f64);
    match (row.bench.as_str(), row.subject.as_str()) {
        ("B1" | "B2", subject) if subject.starts_with("stagecraft") => match target_ns {
            Some(target) => {
                format!("target ≤ {} ns: {}", number(target), verdict(row.median <= target))
            }
            None => String::new(),
        },
        ("B1", peer) => match find(rows, "B1", "stagecraft", "validate a valid") {
            Some(ours) => format!("{peer} ÷ stagecraft = {}×", number(row.median / ours.median)),
            None => String::new(),
        },
        ("B3", "stagecraft") if row.what == "throughput" => {
            let mut parts = Vec::new();
            let mut bound = f64::INFINITY;
            if let Some(hello) = hello {
                parts.push(format!("{:.0}% of hello-world", 100.0 * row.median / hello.median));
                bound = bound.min(hello.median);
            }
            if let Some(fsync) = fsync {
                let connections =
                    row.extra.get("connections").and_then(Value::as_f64).unwrap_or(64.0);
                let ceiling = connections / (fsync.median * 1e-6);
                parts.push(format!(
                    "{:.0}% of conns ÷ fsync ({})",
                    100.0 * row.median / ceiling,
                    number(ceiling)
                ));
                bound = bound.min(ceiling);
            }
            if bound.is_finite() {
                parts.push(format!(
                    "target ≥ 50% of the lower: {}",
                    verdict(row.median >= bound / 2.0)
                ));
            }
            parts.join("; ")
        }
        ("B3", "stagecraft") if row.what == "latency p99" => {
            format!("target ≤ 20 ms: {}", verdict(row.median <= 20.0))
        }
        ("B4", subject) if subject.starts_with("stagecraft") => {
            match (ours_b4, find(rows, "B4", "SpiffWorkflow", "")) {
                (Some(ours), Some(spiff)) if std::ptr::eq(ours, row) => {
                    let times = ours.median / spiff.median;
                    format!(
                        "{}× SpiffWorkflow; target ≥ 10×: {}",
                        number(times),
                        verdict(times >= 10.0)
                    )
                }
                _ => String::new(),
            }
        }
        ("B4", peer) => match ours_b4 {
            Some(ours) => format!("stagecraft D2 ÷ {peer} = {}×", number(ours.median / row.median)),
            None => String::new(),
        },
        ("B5", _) => {
            let per = row.extra.get("us_per_record").and_then(Value::as_f64).unwrap_or(f64::NAN);
            let commits = row.extra.get("commits").and_then(Value::as_u64).unwrap_or(0);
            format!(
                "{} µs per record, {commits} commits; target ≤ 1 s at 1M: {}",
                number(per),
                verdict(
                    row.median <= 1.0
                        && row.extra.get("records").and_then(Value::as_u64) >= Some(1_000_000)
                )
            )
        }
        ("B6", _) if row.what.starts_with("lateness") => {
            let once = row.extra.get("exactly_once").and_then(Value::as_bool).unwrap_or(false);
            format!(
                "each fired once: {}; target p99 ≤ 1 s: {}",
                if once { "yes" } else { "**no**" },
                verdict(row.median <= 1.0)
            )
        }
        ("B6", _) => {
            let rate = row.extra.get("per_second").and_then(Value::as_f64).unwrap_or(f64::NAN);
            format!("{} timers/s", number(rate))
        }
        ("base", "fsync probe") => {
            format!("64 conns ÷ latency = {} req/s", number(64.0 / (row.median * 1e-6)))
        }
        _ => String::new(),
    }
}

/// The table of a results file, in Markdown.
pub(crate) fn table(results: &str) -> anyhow::Result<String> {
    let rows = rows(results)?;
    let mut out = String::new();
    writeln!(
        out,
        "| bench | subject | figure | median (min–max) | unit | dur. | peak RSS | size | vs |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|---|")?;
    let order = ["base", "B1", "B2", "B3", "B4", "B5", "B6"];
    for bench in order {
        for row in rows.iter().filter(|row| row.bench == bench) {
            let spread = if row.repeats > 1 {
                format!("{} ({}–{})", number(row.median), number(row.min), number(row.max))
            } else {
                number(row.median)
            };
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} MiB | {} | {} |",
                row.bench,
                row.subject,
                row.what,
                spread,
                row.unit,
                row.durability,
                row.rss_kib / 1024,
                row.size,
                ratio(&rows, row)
            )?;
        }
    }
    Ok(out)
}
