//! `promote status`: every promoted version, where it came from and where it stands.

use promotion_core::domain::deploy::StageConfig;
use promotion_core::domain::ids::{GroupName, ModelPackageArn, Stage};
use promotion_core::ports::{Ledger, ModelRegistry, PortResult};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct StatusRow {
    pub source: String,
    pub state: String,
    pub central_package: Option<String>,
    pub central_approval: Option<String>,
    pub model_card_version: Option<u32>,
    /// What the test and prod endpoints do with this version (`InService`, `RolledBack`…).
    pub test: Option<String>,
    pub prod: Option<String>,
    pub promoted_at: Option<String>,
    pub decided_at: String,
    pub reason: Option<String>,
}

/// `stages` names each stage's endpoint of a model.
pub async fn status(ledger: &dyn Ledger, central: &dyn ModelRegistry, stages: &StageConfig) -> PortResult<Vec<StatusRow>> {
    let mut records = ledger.promotions().await?;
    records.sort_by_key(|r| std::cmp::Reverse(r.decided_at));
    let mut rows = Vec::with_capacity(records.len());
    for record in records {
        let (test, prod) = match (&record.central_group, &record.central_package) {
            (Some(group), Some(central)) => {
                (on_stage(ledger, stages, group, central, Stage::Test).await?, on_stage(ledger, stages, group, central, Stage::Prod).await?)
            }
            _ => (None, None),
        };
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
            test,
            prod,
            promoted_at: record.promoted_at.map(|t| t.to_rfc3339()),
            decided_at: record.decided_at.to_rfc3339(),
            reason: record.reason,
        });
    }
    Ok(rows)
}

async fn on_stage(ledger: &dyn Ledger, stages: &StageConfig, group: &GroupName, central: &ModelPackageArn, stage: Stage) -> PortResult<Option<String>> {
    let deployment = ledger.deployment(stage, &stages.stage(stage).endpoint_name(group, stage)).await?;
    Ok(deployment.filter(|d| &d.package == central).map(|d| format!("{:?}", d.state)))
}

pub fn render(rows: &[StatusRow]) -> String {
    let header = ["SOURCE", "STATE", "CENTRAL VERSION", "CENTRAL APPROVAL", "CARD", "TEST", "PROD", "WHEN"];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|row| {
            [
                row.source.clone(),
                row.state.clone(),
                row.central_package.clone().unwrap_or_else(|| "-".into()),
                row.central_approval.clone().unwrap_or_else(|| "-".into()),
                row.model_card_version.map_or_else(|| "-".into(), |v| v.to_string()),
                row.test.clone().unwrap_or_else(|| "-".into()),
                row.prod.clone().unwrap_or_else(|| "-".into()),
                row.promoted_at.clone().unwrap_or_else(|| row.decided_at.clone()),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len()).map(|i| cells.iter().map(|c| c[i].len()).chain([header[i].len()]).max().unwrap_or(0)).collect();
    let line = |values: Vec<&str>| {
        let padded: Vec<String> = values.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header.to_vec());
    for row in &cells {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}
