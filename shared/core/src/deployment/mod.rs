//! The staged deployment: start-deployment, deploy-model, test-model and record-outcome.

pub mod deploy;
mod error;
mod job;
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
pub(crate) use job::answer_by;
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

/// The audit actions that say a version ran in service on a stage's endpoint: where a rollback may go.
const DEPLOYED: &str = "deployed";
const RESTORED_BY_OPERATOR: &str = "restored-by-operator";

/// One line of a version's audit trail, now. The ledger keys it on `event_id` (the job id, for a
/// pipeline action) and `action`, so a redelivered job writes it once.
pub(crate) async fn audit(
    ledger: &dyn Ledger,
    package: &crate::domain::ids::ModelPackageArn,
    event_id: &str,
    action: &str,
    detail: serde_json::Value,
) -> Result<(), DeployError> {
    let entry =
        crate::domain::ledger::AuditEntry { source: package.clone(), at: chrono::Utc::now(), event_id: event_id.to_owned(), action: action.to_owned(), detail };
    Ok(ledger.append(&entry).await?)
}

/// Pipeline jobs and versions over the fakes, for the tests of this module.
#[cfg(test)]
pub(crate) mod testing {
    use serde_json::{json, Value};

    use crate::domain::event::ApprovalStatus;
    use crate::domain::ids::{ModelPackageArn, Stage};
    use crate::domain::ledger::{PromotionRecord, PromotionState};
    use crate::fakes::DeployWorld;

    use super::JobOutcome;

    /// A `CodePipeline.job` event of a deploy-model or test-model action.
    pub fn job_event(id: &str, stage: Stage, package: &ModelPackageArn, continuation: Option<&str>) -> Value {
        let parameters = json!({ "stage": stage, "model_package_arn": package }).to_string();
        let mut data = json!({
            "actionConfiguration": { "configuration": { "FunctionName": "deploy-model", "UserParameters": parameters } },
            "artifactCredentials": { "accessKeyId": "AKIA-TEST", "secretAccessKey": "secret", "sessionToken": "token" },
        });
        if let Some(token) = continuation {
            data["continuationToken"] = token.into();
        }
        json!({ "CodePipeline.job": { "id": id, "accountId": "222222222222", "data": data } })
    }

    /// The end of an invocation that starts now, as deploy-model's two-minute timeout sets it.
    pub fn deadline() -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + chrono::Duration::minutes(2)
    }

    /// Runs deploy-model to its final answer as CodePipeline does: each invocation a job of its
    /// own, carrying the continuation token of the last answer.
    pub async fn deploy(world: &DeployWorld, package: &ModelPackageArn, stage: Stage) -> JobOutcome {
        let run = uuid::Uuid::new_v4();
        let mut continuation = None;
        for step in 0..20 {
            let event = job_event(&format!("job-{run}-{step}"), stage, package, continuation.as_deref());
            match super::deploy::handle_deploy_job(&world.ports, &world.config, &event, deadline()).await.expect("the job is answered") {
                JobOutcome::Continuing { continuation: token, .. } => continuation = Some(token),
                done => return done,
            }
        }
        panic!("the deployment of {package} did not end in 20 jobs")
    }

    /// Version `version` of the world's group, promoted by the service and approved centrally.
    pub fn add_version(world: &DeployWorld, version: u32) -> ModelPackageArn {
        let arn = ModelPackageArn::new("us-east-1", &"222222222222".parse().expect("account"), world.package.group(), version);
        let mut package = world.central.packages.lock().unwrap()[world.package.as_str()].clone();
        package.arn = arn.clone();
        package.status = Some(ApprovalStatus::Approved);
        world.central.add(package);
        let source: ModelPackageArn =
            format!("arn:aws:sagemaker:us-east-1:111111111111:model-package/churn-prediction/{}", 100 + version).parse().expect("arn");
        let mut record = PromotionRecord::new(source.clone(), PromotionState::Promoted, &format!("e-{version}"), chrono::Utc::now());
        record.central_package = Some(arn.clone());
        record.central_group = Some(arn.group().clone());
        world.ledger.records.lock().unwrap().insert(source.to_string(), record);
        arn
    }
}
