//! 5. Event parsing and validation: criterion's estimates of `benches/parse.rs`.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::args::Args;

pub fn criterion(args: &Args) -> Result<String> {
    let group = args.criterion_dir.join("parse");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&group)
        .with_context(|| format!("{} (run `cargo bench -p promotion-bench --bench parse` first)", group.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("new/estimates.json").exists())
        .collect();
    entries.sort();
    let mut text = String::new();
    writeln!(text, "`cargo bench --profile release -p promotion-bench --bench parse` (criterion 0.5): `StateChange::parse` on the reference")?;
    writeln!(text, "events, from a `serde_json::Value` (what the handler receives) and from the wire bytes (deserialization included).\n")?;
    writeln!(text, "| benchmark | mean time | 95% interval | throughput |")?;
    writeln!(text, "|---|---|---|---|")?;
    for entry in entries {
        let estimates: Value = serde_json::from_str(&std::fs::read_to_string(entry.join("new/estimates.json"))?)?;
        let mean = &estimates["mean"];
        let ns = mean["point_estimate"].as_f64().unwrap_or(f64::NAN);
        let low = mean["confidence_interval"]["lower_bound"].as_f64().unwrap_or(f64::NAN);
        let high = mean["confidence_interval"]["upper_bound"].as_f64().unwrap_or(f64::NAN);
        let name = entry.file_name().unwrap_or_default().to_string_lossy().into_owned();
        writeln!(text, "| {name} | {} | {}–{} | {:.2} M events/s |", nanos(ns), nanos(low), nanos(high), 1e3 / ns)?;
    }
    Ok(text)
}

fn nanos(ns: f64) -> String {
    if ns >= 1000.0 {
        format!("{:.2} µs", ns / 1000.0)
    } else {
        format!("{ns:.0} ns")
    }
}
