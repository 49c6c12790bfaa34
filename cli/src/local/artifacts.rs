//! Small but real training outputs for the local dev account.

use std::io::Write;

use anyhow::Result;
use flate2::write::GzEncoder;
use flate2::Compression;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A `model.tar.gz` of about `megabytes` MB: a linear model's weights, as a trainer writes them.
/// Seeded, so every run uploads the same bytes.
pub fn model_archive(megabytes: usize) -> Result<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut weights = String::from("{\"model\":\"linear\",\"weights\":[");
    while weights.len() < megabytes * 1024 * 1024 * 2 {
        weights.push_str(&format!("{:.9},", rng.gen_range(-1.0..1.0)));
    }
    weights.push_str("0.0]}");
    let mut header = tar::Header::new_gnu();
    header.set_size(weights.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_cksum();
    let mut archive = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    archive.append_data(&mut header, "model.json", weights.as_bytes())?;
    let mut gz = archive.into_inner()?;
    gz.flush()?;
    Ok(gz.finish()?)
}

pub fn evaluation_report() -> Vec<u8> {
    serde_json::json!({
        "binary_classification_metrics": {
            "accuracy": { "value": 0.912, "standard_deviation": 0.004 },
            "auc": { "value": 0.957, "standard_deviation": 0.003 },
            "f1": { "value": 0.871, "standard_deviation": 0.006 }
        }
    })
    .to_string()
    .into_bytes()
}

pub fn baseline_constraints() -> Vec<u8> {
    serde_json::json!({
        "version": 0.0,
        "binary_classification_constraints": {
            "accuracy": { "threshold": 0.85, "comparison_operator": "LessThanThreshold" }
        }
    })
    .to_string()
    .into_bytes()
}
