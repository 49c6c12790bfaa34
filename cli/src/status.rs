//! `promote status`: what runs where now, per model, read live from the accounts (the dev and
//! central registries, the test and prod endpoints through the stage deploy roles) with the
//! ledger naming the models and their versions; `--versions`: every promoted version as the
//! ledger records it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use promotion_core::domain::deploy::{deployment_name, StageConfig};
use promotion_core::domain::ids::{GroupName, ModelPackageArn, Stage};
use promotion_core::domain::ledger::PromotionRecord;
use promotion_core::domain::naming::central_group_name;
use promotion_core::ports::{AccountSessions, EndpointStatus, Ledger, ModelRegistry, PortResult, StageSessions};
use serde::Serialize;

use crate::ui;

/// Where `promote status` reads: the same ports the functions use.
pub struct Live<'a> {
    pub ledger: &'a dyn Ledger,
    pub central: &'a dyn ModelRegistry,
    /// Dev registries, through the source read role.
    pub sources: &'a dyn AccountSessions,
    /// Stage hosting, through each stage's deploy role.
    pub stages: &'a dyn StageSessions,
    pub stage_config: &'a StageConfig,
}

/// One model (a central group) as it stands now.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    pub model: String,
    /// The ledger's state of the model's newest dev version (`Promoted`, `Revoked`…).
    pub state: String,
    pub dev: VersionStatus,
    pub central: Option<VersionStatus>,
    pub model_card_version: Option<u32>,
    /// The test endpoint; `None` when there is none.
    pub test: Option<Serving>,
    pub prod: Option<Serving>,
    pub updated_at: DateTime<Utc>,
    pub reason: Option<String>,
}

/// A model package version and its approval status in its registry, read now.
#[derive(Debug, Clone, Serialize)]
pub struct VersionStatus {
    pub package: String,
    pub version: u32,
    pub approval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A stage's endpoint as SageMaker describes it now, and the version its config serves.
#[derive(Debug, Clone, Serialize)]
pub struct Serving {
    pub endpoint: String,
    pub account: String,
    pub status: Option<String>,
    pub config: Option<String>,
    pub package: Option<String>,
    pub version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every model the ledger knows, with what runs where now.
pub async fn models(live: &Live<'_>) -> PortResult<Vec<ModelStatus>> {
    let mut by_model: BTreeMap<String, (GroupName, Vec<PromotionRecord>)> = BTreeMap::new();
    for record in live.ledger.promotions().await? {
        let model = record.central_group.clone().unwrap_or_else(|| central_group_name(&record.source));
        by_model.entry(model.to_string()).or_insert_with(|| (model, Vec::new())).1.push(record);
    }
    Ok(futures::future::join_all(by_model.into_values().map(|(model, records)| model_status(live, model, records))).await)
}

async fn model_status(live: &Live<'_>, model: GroupName, mut records: Vec<PromotionRecord>) -> ModelStatus {
    records.sort_by_key(|r| r.decided_at);
    let known: Vec<ModelPackageArn> = records.iter().filter_map(|r| r.central_package.clone()).collect();
    let newest = records.pop().expect("a model has a record");
    let dev = async {
        let registry = live.sources.registry(newest.source.account()).await;
        match registry {
            Ok(registry) => version_status(registry.as_ref(), &newest.source).await,
            Err(error) => unread(&newest.source, error.to_string()),
        }
    };
    let central = async {
        match &newest.central_package {
            Some(package) => Some(version_status(live.central, package).await),
            None => None,
        }
    };
    let (dev, central, test, prod) = futures::join!(dev, central, serving(live, &model, Stage::Test, &known), serving(live, &model, Stage::Prod, &known));
    ModelStatus {
        model: model.to_string(),
        state: newest.state.as_str().to_owned(),
        dev,
        central,
        model_card_version: newest.card_version,
        test,
        prod,
        updated_at: newest.promoted_at.unwrap_or(newest.decided_at).max(newest.decided_at),
        reason: newest.reason,
    }
}

async fn version_status(registry: &dyn ModelRegistry, package: &ModelPackageArn) -> VersionStatus {
    match registry.describe_package(package).await {
        Ok(described) => {
            VersionStatus { package: package.to_string(), version: package.version(), approval: described.status.map(|s| s.as_str().to_owned()), error: None }
        }
        Err(error) => unread(package, error.to_string()),
    }
}

fn unread(package: &ModelPackageArn, error: String) -> VersionStatus {
    VersionStatus { package: package.to_string(), version: package.version(), approval: None, error: Some(error) }
}

/// The stage's endpoint of `model`, and which of the `known` central versions its config serves.
async fn serving(live: &Live<'_>, model: &GroupName, stage: Stage, known: &[ModelPackageArn]) -> Option<Serving> {
    let settings = live.stage_config.stage(stage);
    let endpoint = settings.endpoint_name(model, stage);
    let mut seen =
        Serving { endpoint: endpoint.clone(), account: settings.account.to_string(), status: None, config: None, package: None, version: None, error: None };
    let described = match live.stages.endpoints(settings).await {
        Ok(hosting) => hosting.describe_endpoint(&endpoint).await,
        Err(error) => Err(error),
    };
    let state = match described {
        Ok(Some(state)) => state,
        Ok(None) => return None,
        Err(error) => {
            seen.error = Some(error.to_string());
            return Some(seen);
        }
    };
    let mut package = known.iter().find(|p| deployment_name(p, stage) == state.config_name).cloned();
    if package.is_none() {
        // A config named otherwise (a rollback target made before a rename): the ledger knows.
        if let Ok(Some(record)) = live.ledger.deployment(stage, &endpoint).await {
            package = if record.config == state.config_name {
                Some(record.package)
            } else {
                record.previous_package.filter(|_| record.previous_config.as_deref() == Some(&state.config_name))
            };
        }
    }
    seen.status = Some(endpoint_status(&state.status));
    seen.config = Some(state.config_name);
    seen.version = package.as_ref().map(ModelPackageArn::version);
    seen.package = package.map(|p| p.to_string());
    Some(seen)
}

fn endpoint_status(status: &EndpointStatus) -> String {
    match status {
        EndpointStatus::Other(raw) => raw.clone(),
        known => format!("{known:?}"),
    }
}

/// Problems met while reading, one line each, for stderr.
pub fn unreadable(models: &[ModelStatus]) -> Vec<String> {
    let mut lines = Vec::new();
    for m in models {
        let versions = [("dev", Some(&m.dev)), ("central", m.central.as_ref())];
        for (what, error) in versions.iter().filter_map(|(what, v)| Some((what, v.as_ref()?.error.as_ref()?))) {
            lines.push(format!("{}: cannot read the {what} version: {error}", m.model));
        }
        for (stage, error) in [("test", &m.test), ("prod", &m.prod)].iter().filter_map(|(stage, s)| Some((stage, s.as_ref()?.error.as_ref()?))) {
            lines.push(format!("{}: cannot read the {stage} endpoint: {error}", m.model));
        }
    }
    lines
}

fn version_cell(version: Option<&VersionStatus>) -> String {
    match version {
        None => "-".into(),
        Some(VersionStatus { error: Some(_), version, .. }) => format!("v{version} ?"),
        Some(v) => format!("v{}", v.version),
    }
}

fn serving_cell(serving: Option<&Serving>) -> String {
    let Some(serving) = serving else { return "-".into() };
    if serving.error.is_some() {
        return "?".into();
    }
    let version = serving.version.map_or_else(|| "unknown version".to_owned(), |v| format!("v{v}"));
    match serving.status.as_deref() {
        Some("InService") | None => version,
        Some(status) => format!("{version} {status}"),
    }
}

/// The per-model table: `wide` adds the registries' ARNs, the endpoints and their configs.
pub fn render_models(models: &[ModelStatus], wide: bool, now: DateTime<Utc>, width: u16) -> String {
    let approval = |v: Option<&VersionStatus>| v.and_then(|v| v.approval.clone()).unwrap_or_else(|| "-".into());
    if !wide {
        let header = ["MODEL", "DEV", "CENTRAL", "APPROVAL", "TEST", "PROD", "UPDATED"];
        let rows: Vec<Vec<String>> = models
            .iter()
            .map(|m| {
                vec![
                    m.model.clone(),
                    version_cell(Some(&m.dev)),
                    version_cell(m.central.as_ref()),
                    approval(m.central.as_ref()),
                    serving_cell(m.test.as_ref()),
                    serving_cell(m.prod.as_ref()),
                    format!("{} ago", ui::age(m.updated_at, now)),
                ]
            })
            .collect();
        return ui::table(&header, &rows, width);
    }
    let header = ["MODEL", "STATE", "DEV VERSION", "DEV APPROVAL", "CENTRAL VERSION", "APPROVAL", "CARD", "TEST", "PROD", "UPDATED"];
    let endpoint = |s: Option<&Serving>| {
        s.map_or_else(
            || "-".to_owned(),
            |s| format!("{} {} ({})", s.endpoint, s.status.as_deref().unwrap_or("?"), s.config.as_deref().or(s.error.as_deref()).unwrap_or("-")),
        )
    };
    let rows: Vec<Vec<String>> = models
        .iter()
        .map(|m| {
            vec![
                m.model.clone(),
                m.state.clone(),
                m.dev.package.clone(),
                approval(Some(&m.dev)),
                m.central.as_ref().map_or_else(|| "-".into(), |c| c.package.clone()),
                approval(m.central.as_ref()),
                m.model_card_version.map_or_else(|| "-".into(), |v| v.to_string()),
                endpoint(m.test.as_ref()),
                endpoint(m.prod.as_ref()),
                m.updated_at.to_rfc3339(),
            ]
        })
        .collect();
    ui::table(&header, &rows, width)
}

/// One promoted version as the ledger records it (`promote status --versions`).
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

/// Every promoted version, newest first; `stages` names each stage's endpoint of a model.
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

/// The versions table, short names (full ARNs with `wide`), fitted to the terminal.
pub fn render(rows: &[StatusRow]) -> String {
    render_versions(rows, ui::output() == ui::Output::Wide, ui::fit(ui::output()))
}

pub fn render_versions(rows: &[StatusRow], wide: bool, width: u16) -> String {
    let name = |raw: &str| match (wide, raw.parse::<ModelPackageArn>()) {
        (false, Ok(package)) => ui::short(&package),
        _ => raw.to_owned(),
    };
    let dash = |value: Option<String>| value.unwrap_or_else(|| "-".into());
    let header = ["SOURCE", "STATE", "CENTRAL", "APPROVAL", "CARD", "TEST", "PROD", "WHEN"];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            vec![
                name(&row.source),
                row.state.clone(),
                dash(row.central_package.as_deref().map(name)),
                dash(row.central_approval.clone()),
                dash(row.model_card_version.map(|v| format!("v{v}"))),
                dash(row.test.clone()),
                dash(row.prod.clone()),
                row.promoted_at.clone().unwrap_or_else(|| row.decided_at.clone()),
            ]
        })
        .collect();
    ui::table(&header, &cells, width)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(test: Option<Serving>, prod: Option<Serving>) -> ModelStatus {
        let version = |package: &str, approval: &str| VersionStatus {
            package: package.into(),
            version: package.rsplit('/').next().unwrap().parse().unwrap(),
            approval: Some(approval.into()),
            error: None,
        };
        ModelStatus {
            model: "churn-prediction-111111111111".into(),
            state: "Promoted".into(),
            dev: version("arn:aws:sagemaker:us-east-1:111111111111:model-package/churn-prediction/3", "Approved"),
            central: Some(version("arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-prediction-111111111111/2", "Approved")),
            model_card_version: Some(2),
            test,
            prod,
            updated_at: Utc::now() - chrono::Duration::minutes(3),
            reason: None,
        }
    }

    fn serving(version: u32, status: &str) -> Serving {
        Serving {
            endpoint: "promoted-churn-prediction-111111111111-test".into(),
            account: "333333333333".into(),
            status: Some(status.into()),
            config: Some(format!("promoted-churn-prediction-111111111111-v{version}-test")),
            package: None,
            version: Some(version),
            error: None,
        }
    }

    #[test]
    fn a_model_reads_on_one_short_line_with_the_version_each_stage_serves() {
        let models = [model(Some(serving(2, "InService")), Some(serving(1, "Updating")))];

        let text = anstream::adapter::strip_str(&render_models(&models, false, Utc::now(), 100)).to_string();

        let line = text.lines().nth(1).unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words, ["churn-prediction-111111111111", "v3", "v2", "Approved", "v2", "v1", "Updating", "3m", "ago"], "{text}");
        assert!(text.lines().all(|l| l.len() <= 100) && !text.contains("arn:"), "{text}");
        let wide = anstream::adapter::strip_str(&render_models(&models, true, Utc::now(), 400)).to_string();
        assert!(wide.contains("arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-prediction-111111111111/2"), "{wide}");
    }

    #[test]
    fn an_endpoint_that_could_not_be_read_is_a_question_mark_and_a_warning() {
        let mut unread = serving(2, "InService");
        unread.error = Some("AssumeRole failed: AccessDenied".into());
        let models = [model(None, Some(unread))];

        let text = anstream::adapter::strip_str(&render_models(&models, false, Utc::now(), 100)).to_string();

        assert_eq!(text.lines().nth(1).unwrap().split_whitespace().nth(4), Some("-"), "no test endpoint: {text}");
        assert_eq!(text.lines().nth(1).unwrap().split_whitespace().nth(5), Some("?"), "{text}");
        assert_eq!(unreadable(&models), ["churn-prediction-111111111111: cannot read the prod endpoint: AssumeRole failed: AccessDenied"]);
    }
}
