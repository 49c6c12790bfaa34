//! `promote status`: every promoted version, where it came from and where it stands.

use serde::Serialize;
use shared::ports::{Ledger, ModelRegistry, PortResult};

#[derive(Debug, Serialize)]
pub struct StatusRow {
    pub source: String,
    pub state: String,
    pub central_package: Option<String>,
    pub central_approval: Option<String>,
    pub model_card_version: Option<u32>,
    pub promoted_at: Option<String>,
    pub decided_at: String,
    pub reason: Option<String>,
}

pub async fn status(ledger: &dyn Ledger, central: &dyn ModelRegistry) -> PortResult<Vec<StatusRow>> {
    let mut records = ledger.promotions().await?;
    records.sort_by_key(|r| std::cmp::Reverse(r.decided_at));
    let mut rows = Vec::with_capacity(records.len());
    for record in records {
        let approval = match &record.central_package {
            Some(arn) => central.describe_package(arn).await?.status.map(|s| s.as_str().to_owned()),
            None => None,
        };
        rows.push(StatusRow {
            source: record.source.to_string(),
            state: record.state.as_str().to_owned(),
            central_package: record.central_package.map(|p| p.to_string()),
            central_approval: approval,
            model_card_version: record.card_version,
            promoted_at: record.promoted_at.map(|t| t.to_rfc3339()),
            decided_at: record.decided_at.to_rfc3339(),
            reason: record.reason,
        });
    }
    Ok(rows)
}

pub fn render(rows: &[StatusRow]) -> String {
    let mut out = format!("{:<72} {:<14} {:<72} {:<22} {:>4}  {}\n", "SOURCE", "STATE", "CENTRAL VERSION", "CENTRAL APPROVAL", "CARD", "WHEN");
    for row in rows {
        out.push_str(&format!(
            "{:<72} {:<14} {:<72} {:<22} {:>4}  {}\n",
            row.source,
            row.state,
            row.central_package.as_deref().unwrap_or("-"),
            row.central_approval.as_deref().unwrap_or("-"),
            row.model_card_version.map_or("-".to_owned(), |v| v.to_string()),
            row.promoted_at.as_deref().unwrap_or(&row.decided_at),
        ));
    }
    out
}
