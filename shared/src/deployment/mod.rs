//! The staged deployment: start-deployment, deploy-model, test-model and record-outcome.

mod error;
mod job;
pub mod deploy;
pub mod operate;
pub mod outcome;
pub mod start;
pub mod test;

use std::sync::Arc;

use crate::config::ConfigError;
use crate::domain::deploy::StageConfig;
use crate::domain::ids::{AccountId, IdError};
use crate::ports::{ArtifactStore, Ledger, ModelCards, ModelRegistry, Notifier, PipelineJobs, PipelineRuns, StageSessions};

pub use error::DeployError;
pub use job::{answer_job, JobOutcome, Step};

/// Everything the deployment functions talk to.
#[derive(Clone)]
pub struct DeployPorts {
    pub stages: Arc<dyn StageSessions>,
    pub central_registry: Arc<dyn ModelRegistry>,
    pub jobs: Arc<dyn PipelineJobs>,
    pub runs: Arc<dyn PipelineRuns>,
    pub ledger: Arc<dyn Ledger>,
    pub artifacts: Arc<dyn ArtifactStore>,
    pub cards: Arc<dyn ModelCards>,
    /// The governance officers' approval topic.
    pub approvers: Arc<dyn Notifier>,
}

/// The deployment functions' configuration, read once from the environment.
#[derive(Debug, Clone)]
pub struct DeployConfig {
    pub central_account: AccountId,
    pub stages: StageConfig,
    pub artifact_bucket: String,
    pub kms_key_id: String,
    pub ledger_table: String,
    pub pipeline: String,
    pub approval_topic_arn: String,
}

/// The stage settings of the local accounts (demo and tests); an example for real ones.
pub const LOCAL_STAGE_CONFIG: &str = include_str!("../../stage-config.local.json");

/// The manual approval between TestModel and DeployProd, as the pipeline definition names it.
pub const APPROVAL_STAGE: &str = "ApproveProd";
pub const APPROVAL_ACTION: &str = "ApproveProd";
pub const DEPLOY_PROD_STAGE: &str = "DeployProd";

impl DeployConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| lookup(name).filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(name));
        let invalid = |name: &'static str| move |reason: String| ConfigError::Invalid { name, reason };
        Ok(Self {
            central_account: required("CENTRAL_ACCOUNT_ID")?.parse().map_err(|e: IdError| invalid("CENTRAL_ACCOUNT_ID")(e.to_string()))?,
            stages: StageConfig::parse(&required("STAGE_CONFIG")?).map_err(|e| invalid("STAGE_CONFIG")(e.to_string()))?,
            artifact_bucket: required("ARTIFACT_BUCKET")?,
            kms_key_id: required("ARTIFACT_KMS_KEY_ID")?,
            ledger_table: required("LEDGER_TABLE")?,
            pipeline: required("PIPELINE_NAME")?,
            approval_topic_arn: required("APPROVAL_TOPIC_ARN")?,
        })
    }
}

/// One line of a version's audit trail, now.
pub(crate) async fn audit(
    ledger: &dyn Ledger,
    package: &crate::domain::ids::ModelPackageArn,
    event_id: &str,
    action: &str,
    detail: serde_json::Value,
) -> Result<(), DeployError> {
    let entry = crate::domain::ledger::AuditEntry {
        source: package.clone(),
        at: chrono::Utc::now(),
        event_id: event_id.to_owned(),
        action: action.to_owned(),
        detail,
    };
    Ok(ledger.append(&entry).await?)
}
