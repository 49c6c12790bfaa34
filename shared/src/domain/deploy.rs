//! Staged deployment: stage settings, deterministic SageMaker names, the CodePipeline job.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::{truncated, AccountId, GroupName, ModelPackageArn, Stage, SAGEMAKER_NAME_MAX};
use super::naming::hex_sha256;

/// How one stage runs its endpoint: from configuration, never from code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageSettings {
    pub account: AccountId,
    /// Role in the stage account that the central functions assume.
    pub deploy_role: String,
    /// Role SageMaker runs the model under in the stage account.
    pub execution_role_arn: String,
    pub instance_type: String,
    #[serde(default = "one")]
    pub instance_count: u32,
    /// Prod: blue/green traffic shifting guarded by these alarms.
    #[serde(default)]
    pub blue_green: Option<BlueGreen>,
    #[serde(default)]
    pub tests: Vec<TestCase>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlueGreen {
    /// CloudWatch alarm names whose firing rolls the update back.
    pub alarms: Vec<String>,
    /// Canary share of capacity (percent); `None` shifts all at once.
    #[serde(default)]
    pub canary_percent: Option<u32>,
    #[serde(default = "default_wait")]
    pub canary_wait_seconds: u32,
    #[serde(default = "default_wait")]
    pub termination_wait_seconds: u32,
}

fn default_wait() -> u32 {
    300
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestCase {
    pub name: String,
    pub content_type: String,
    pub payload: String,
    #[serde(default = "ok_status")]
    pub expect_status: u16,
    /// A substring the response body must contain.
    #[serde(default)]
    pub expect_body_contains: Option<String>,
    pub max_latency_ms: u64,
}

fn ok_status() -> u16 {
    200
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StageConfigError {
    #[error("STAGE_CONFIG is not valid JSON of stage settings: {0}")]
    Malformed(String),
    #[error("STAGE_CONFIG has no settings for stage {0}")]
    MissingStage(Stage),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageConfig(BTreeMap<String, StageSettings>);

impl StageConfig {
    pub fn parse(raw: &str) -> Result<Self, StageConfigError> {
        let stages: BTreeMap<String, StageSettings> = serde_json::from_str(raw).map_err(|e| StageConfigError::Malformed(e.to_string()))?;
        for stage in [Stage::Test, Stage::Prod] {
            if !stages.contains_key(&stage.to_string()) {
                return Err(StageConfigError::MissingStage(stage));
            }
        }
        Ok(Self(stages))
    }

    pub fn stage(&self, stage: Stage) -> &StageSettings {
        &self.0[&stage.to_string()]
    }
}

/// A name SageMaker accepts (63 characters at most), deterministic for its parts; too long a
/// name keeps a readable prefix and a hash of the whole.
pub fn fit_name(wanted: &str) -> String {
    if wanted.len() <= SAGEMAKER_NAME_MAX {
        return wanted.to_owned();
    }
    let hash = &hex_sha256(wanted.as_bytes())[..10];
    let prefix = wanted[..SAGEMAKER_NAME_MAX - hash.len() - 1].trim_end_matches('-');
    format!("{prefix}-{hash}")
}

/// Starts the name of every model, endpoint config and endpoint the service creates, so that the
/// deploy role in the stage accounts may touch those and nothing else (infra/names.json).
pub const HOSTING_NAME_PREFIX: &str = "promoted-";

/// The endpoint a model group runs on in a stage.
pub fn endpoint_name(group: &GroupName, stage: Stage) -> String {
    fit_name(&format!("{HOSTING_NAME_PREFIX}{group}-{stage}"))
}

/// The model and the endpoint config of one version in one stage share this name.
pub fn deployment_name(package: &ModelPackageArn, stage: Stage) -> String {
    fit_name(&format!("{HOSTING_NAME_PREFIX}{}-v{}-{stage}", package.group(), package.version()))
}

/// `UserParameters` of the deploy-model and test-model actions; the pipeline resolves
/// `#{variables.ModelPackageArn}` before the function sees it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ActionParameters {
    pub stage: Stage,
    pub model_package_arn: ModelPackageArn,
}

/// The parts of a CodePipeline job event the functions use. The event's `artifactCredentials`
/// are not even read, so they can never reach a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineJob {
    pub id: String,
    pub parameters: ActionParameters,
    pub continuation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("not a CodePipeline job event: missing {0}")]
    Missing(&'static str),
    #[error("UserParameters are not {{\"stage\": \"test|prod\", \"model_package_arn\": ARN}}: {0}")]
    Parameters(String),
}

#[derive(Deserialize)]
struct JobEnvelope {
    #[serde(rename = "CodePipeline.job")]
    job: Option<RawJob>,
}

#[derive(Deserialize)]
struct RawJob {
    id: Option<String>,
    data: Option<RawData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawData {
    action_configuration: Option<RawActionConfiguration>,
    continuation_token: Option<String>,
}

#[derive(Deserialize)]
struct RawActionConfiguration {
    configuration: Option<RawConfiguration>,
}

#[derive(Deserialize)]
struct RawConfiguration {
    #[serde(rename = "UserParameters")]
    user_parameters: Option<String>,
}

impl PipelineJob {
    /// The job id, when nothing else can be read: a failure must still be reported to the job.
    pub fn id_of(event: &serde_json::Value) -> Option<&str> {
        event.pointer("/CodePipeline.job/id").and_then(serde_json::Value::as_str)
    }

    pub fn parse(event: &serde_json::Value) -> Result<Self, JobError> {
        let envelope = JobEnvelope::deserialize(event).map_err(|_| JobError::Missing("CodePipeline.job"))?;
        let job = envelope.job.ok_or(JobError::Missing("CodePipeline.job"))?;
        let id = job.id.filter(|id| !id.is_empty()).ok_or(JobError::Missing("CodePipeline.job.id"))?;
        let data = job.data.ok_or(JobError::Missing("CodePipeline.job.data"))?;
        let raw = data
            .action_configuration
            .and_then(|a| a.configuration)
            .and_then(|c| c.user_parameters)
            .ok_or(JobError::Missing("UserParameters"))?;
        let parameters = serde_json::from_str(&raw).map_err(|e| JobError::Parameters(format!("{e}: {}", truncated(&raw))))?;
        Ok(Self { id, parameters, continuation: data.continuation_token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_fit_sagemaker_for_the_longest_group() {
        let group: GroupName = "g".repeat(63).parse().unwrap();
        let package = ModelPackageArn::new("us-east-1", &"222222222222".parse().unwrap(), &group, 123_456);
        for stage in [Stage::Test, Stage::Prod] {
            let name = deployment_name(&package, stage);
            assert!(name.len() <= 63, "{name}");
            assert!(crate::domain::ids::is_sagemaker_name(&name), "{name}");
            assert!(endpoint_name(&group, stage).len() <= 63);
            assert!(name.starts_with(HOSTING_NAME_PREFIX) && endpoint_name(&group, stage).starts_with(HOSTING_NAME_PREFIX));
        }
        let other = ModelPackageArn::new("us-east-1", &"222222222222".parse().unwrap(), &group, 123_457);
        assert_ne!(deployment_name(&package, Stage::Test), deployment_name(&other, Stage::Test));
        assert_ne!(deployment_name(&package, Stage::Test), deployment_name(&package, Stage::Prod));
    }

    #[test]
    fn short_names_stay_readable() {
        let package: ModelPackageArn = "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-111111111111/4".parse().unwrap();
        assert_eq!(deployment_name(&package, Stage::Prod), "promoted-churn-111111111111-v4-prod");
        assert_eq!(endpoint_name(package.group(), Stage::Test), "promoted-churn-111111111111-test");
    }

    #[test]
    fn the_reference_job_event_parses_without_its_credentials() {
        let mut event: serde_json::Value =
            serde_json::from_str(include_str!("../../../events/codepipeline-job-aws-docs.json")).unwrap();
        event["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] =
            json!(r#"{"stage":"test","model_package_arn":"arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-111111111111/1"}"#);
        let job = PipelineJob::parse(&event).unwrap();
        assert_eq!(job.id, "11111111-abcd-1111-abcd-111111abcdef");
        assert_eq!(job.parameters.stage, Stage::Test);
        assert_eq!(job.continuation.as_deref(), Some("A continuation token if continuing job"));
        assert!(!format!("{job:?}").contains("wJalrXUtnFEMI"));
    }

    #[test]
    fn bad_parameters_are_named() {
        let event: serde_json::Value =
            serde_json::from_str(include_str!("../../../events/codepipeline-job-aws-docs.json")).unwrap();
        let error = PipelineJob::parse(&event).unwrap_err();
        assert!(matches!(error, JobError::Parameters(_)), "{error}");
        assert_eq!(PipelineJob::id_of(&event), Some("11111111-abcd-1111-abcd-111111abcdef"));
        assert!(PipelineJob::parse(&json!({"x": 1})).is_err());
    }

    #[test]
    fn stage_config_needs_both_stages() {
        let test = json!({"account": "333333333333", "deploy_role": "r", "execution_role_arn": "arn:aws:iam::333333333333:role/x", "instance_type": "ml.m5.large"});
        let only_test = json!({ "test": test }).to_string();
        assert_eq!(StageConfig::parse(&only_test), Err(StageConfigError::MissingStage(Stage::Prod)));
        let both = json!({ "test": test, "prod": test }).to_string();
        assert_eq!(StageConfig::parse(&both).unwrap().stage(Stage::Prod).instance_count, 1);
    }
}
