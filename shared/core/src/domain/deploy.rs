//! Staged deployment: stage settings, deterministic SageMaker names, the CodePipeline job.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::{is_sagemaker_name, truncated, AccountId, GroupName, ModelPackageArn, Stage, SAGEMAKER_NAME_MAX};
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
    /// The stage's endpoint name for a model, `promoted-{model}-{stage}` unless set.
    #[serde(default, rename = "endpoint_name")]
    pub endpoint_template: EndpointNameTemplate,
}

impl StageSettings {
    /// The endpoint `group` runs on in this stage.
    pub fn endpoint_name(&self, group: &GroupName, stage: Stage) -> String {
        self.endpoint_template.name(group, stage)
    }
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

/// A stage's endpoint name: `{model}` stands for the central group, `{stage}` for the stage.
/// Checked when the configuration is read, so that every name it gives is one SageMaker takes
/// and the stage accounts' deploy role may touch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EndpointNameTemplate(String);

const MODEL_PLACEHOLDER: &str = "{model}";
const STAGE_PLACEHOLDER: &str = "{stage}";

impl Default for EndpointNameTemplate {
    fn default() -> Self {
        Self(format!("{HOSTING_NAME_PREFIX}{MODEL_PLACEHOLDER}-{STAGE_PLACEHOLDER}"))
    }
}

impl EndpointNameTemplate {
    /// The name for `group` in `stage`, shortened as every generated name is.
    pub fn name(&self, group: &GroupName, stage: Stage) -> String {
        fit_name(&self.0.replace(MODEL_PLACEHOLDER, group.as_str()).replace(STAGE_PLACEHOLDER, &stage.to_string()))
    }
}

impl TryFrom<String> for EndpointNameTemplate {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        let shown = truncated(&raw);
        if !raw.starts_with(HOSTING_NAME_PREFIX) {
            return Err(format!("endpoint_name `{shown}` must start with `{HOSTING_NAME_PREFIX}`: the stage accounts' deploy role reaches only those names"));
        }
        if raw.matches(MODEL_PLACEHOLDER).count() != 1 {
            return Err(format!("endpoint_name `{shown}` must hold {MODEL_PLACEHOLDER} once: every model needs an endpoint of its own"));
        }
        let literal = raw.replace(MODEL_PLACEHOLDER, "").replace(STAGE_PLACEHOLDER, "");
        if !literal.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(format!("endpoint_name `{shown}` may hold only letters, digits, hyphens, {MODEL_PLACEHOLDER} and {STAGE_PLACEHOLDER}"));
        }
        let template = Self(raw);
        let shortest: GroupName = "a".parse().expect("a valid group name");
        let longest: GroupName = "a".repeat(SAGEMAKER_NAME_MAX).parse().expect("a valid group name");
        for group in [&shortest, &longest] {
            for stage in [Stage::Test, Stage::Prod] {
                let name = template.name(group, stage);
                if !is_sagemaker_name(&name) {
                    return Err(format!("endpoint_name `{shown}` gives `{name}`, which SageMaker does not take as an endpoint name"));
                }
            }
        }
        Ok(template)
    }
}

impl From<EndpointNameTemplate> for String {
    fn from(template: EndpointNameTemplate) -> String {
        template.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StageConfigError {
    #[error("STAGE_CONFIG is not valid JSON of stage settings: {0}")]
    Malformed(String),
    #[error("STAGE_CONFIG has invalid settings for stage {stage}: {reason}")]
    InvalidStage { stage: String, reason: String },
    #[error("STAGE_CONFIG has no settings for stage {0}")]
    MissingStage(Stage),
    #[error("STAGE_CONFIG's prod settings have no blue_green: prod is updated blue/green, guarded by rollback alarms")]
    ProdWithoutBlueGreen,
    #[error("STAGE_CONFIG's test settings have no tests: test-model needs at least one test case to pass a version on to prod")]
    TestWithoutCases,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageConfig(BTreeMap<String, StageSettings>);

impl StageConfig {
    pub fn parse(raw: &str) -> Result<Self, StageConfigError> {
        let raw_stages: BTreeMap<String, serde_json::Value> = serde_json::from_str(raw).map_err(|e| StageConfigError::Malformed(e.to_string()))?;
        let mut stages = BTreeMap::new();
        for (stage, settings) in raw_stages {
            let settings = StageSettings::deserialize(settings).map_err(|e| StageConfigError::InvalidStage { stage: stage.clone(), reason: e.to_string() })?;
            stages.insert(stage, settings);
        }
        for stage in [Stage::Test, Stage::Prod] {
            if !stages.contains_key(&stage.to_string()) {
                return Err(StageConfigError::MissingStage(stage));
            }
        }
        let config = Self(stages);
        if config.stage(Stage::Prod).blue_green.is_none() {
            return Err(StageConfigError::ProdWithoutBlueGreen);
        }
        if config.stage(Stage::Test).tests.is_empty() {
            return Err(StageConfigError::TestWithoutCases);
        }
        Ok(config)
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
    /// `#{codepipeline.PipelineExecutionId}`: the execution the job says it belongs to, which the
    /// action confirms with CodePipeline before it acts.
    #[serde(default)]
    pub execution_id: Option<String>,
}

/// The parts of a CodePipeline job event the functions use. The event's `artifactCredentials`
/// are not even read, so they can never reach a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineJob {
    pub id: String,
    pub parameters: ActionParameters,
    /// `UserParameters` as the job carried them, to compare with what CodePipeline resolved for
    /// the action run the job claims to be.
    pub raw_parameters: String,
    pub continuation: Option<String>,
}

/// What a finished action hands to the later actions of its pipeline execution (`outputVariables`
/// of `PutJobSuccessResult`), by name: they read one as `#{Namespace.Name}` when the action has a
/// `Namespace`. Names are letters, digits, `@`, `-` and `_`. CodePipeline takes them with a final
/// answer only, never with a continuation token.
pub type OutputVariables = BTreeMap<String, String>;

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
        let raw = data.action_configuration.and_then(|a| a.configuration).and_then(|c| c.user_parameters).ok_or(JobError::Missing("UserParameters"))?;
        let parameters = serde_json::from_str(&raw).map_err(|e| JobError::Parameters(format!("{e}: {}", truncated(&raw))))?;
        Ok(Self { id, parameters, raw_parameters: raw, continuation: data.continuation_token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn group(name: &str) -> GroupName {
        name.parse().unwrap()
    }

    #[test]
    fn names_fit_sagemaker_for_the_longest_group() {
        let group = group(&"g".repeat(63));
        let package = ModelPackageArn::new("us-east-1", &"222222222222".parse().unwrap(), &group, 123_456);
        let endpoint_names = EndpointNameTemplate::default();
        for stage in [Stage::Test, Stage::Prod] {
            let name = deployment_name(&package, stage);
            assert!(name.len() <= 63, "{name}");
            assert!(crate::domain::ids::is_sagemaker_name(&name), "{name}");
            assert!(endpoint_names.name(&group, stage).len() <= 63);
            assert!(name.starts_with(HOSTING_NAME_PREFIX) && endpoint_names.name(&group, stage).starts_with(HOSTING_NAME_PREFIX));
        }
        let other = ModelPackageArn::new("us-east-1", &"222222222222".parse().unwrap(), &group, 123_457);
        assert_ne!(deployment_name(&package, Stage::Test), deployment_name(&other, Stage::Test));
        assert_ne!(deployment_name(&package, Stage::Test), deployment_name(&package, Stage::Prod));
    }

    #[test]
    fn short_names_stay_readable() {
        let package: ModelPackageArn = "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-111111111111/4".parse().unwrap();
        assert_eq!(deployment_name(&package, Stage::Prod), "promoted-churn-111111111111-v4-prod");
        assert_eq!(EndpointNameTemplate::default().name(package.group(), Stage::Test), "promoted-churn-111111111111-test");
    }

    /// The local settings with `change` applied to the stage's JSON.
    fn local_with(stage: &str, change: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut config: serde_json::Value = serde_json::from_str(crate::config::LOCAL_STAGE_CONFIG).unwrap();
        change(&mut config[stage]);
        config.to_string()
    }

    #[test]
    fn the_endpoint_name_comes_from_the_stage_settings() {
        let config = StageConfig::parse(&local_with("test", |test| test["endpoint_name"] = json!("promoted-{model}-qa"))).unwrap();
        let churn = group("churn-prediction-111111111111");
        assert_eq!(config.stage(Stage::Test).endpoint_name(&churn, Stage::Test), "promoted-churn-prediction-111111111111-qa");
        assert_eq!(config.stage(Stage::Prod).endpoint_name(&churn, Stage::Prod), "promoted-churn-prediction-111111111111-prod", "the default");

        let (a, b) = (group(&"a".repeat(63)), group(&format!("{}b", "a".repeat(62))));
        let (name_a, name_b) = (config.stage(Stage::Test).endpoint_name(&a, Stage::Test), config.stage(Stage::Test).endpoint_name(&b, Stage::Test));
        for name in [&name_a, &name_b] {
            assert!(name.len() <= 63 && name.starts_with(HOSTING_NAME_PREFIX) && crate::domain::ids::is_sagemaker_name(name), "{name}");
        }
        assert_ne!(name_a, name_b, "shortened names stay apart");
    }

    #[test]
    fn endpoint_name_templates_the_deploy_role_cannot_reach_or_sagemaker_refuses_are_named() {
        for (template, complaint) in [
            ("models-{model}-test", "must start with `promoted-`"),
            ("promoted-shared-test", "must hold {model} once"),
            ("promoted-{model}-{model}", "must hold {model} once"),
            ("promoted-{model}_{stage}", "only letters, digits, hyphens"),
            ("promoted-{model}-{region}", "only letters, digits, hyphens"),
            ("promoted-{model}-", "SageMaker does not take"),
        ] {
            let error = StageConfig::parse(&local_with("test", |test| test["endpoint_name"] = json!(template))).unwrap_err();
            let StageConfigError::InvalidStage { ref stage, ref reason } = error else { panic!("{template}: {error}") };
            assert_eq!(stage, "test");
            assert!(reason.contains(complaint) && reason.contains(template), "{template}: {error}");
        }
    }

    #[test]
    fn prod_needs_blue_green_and_test_needs_a_test_case() {
        let without_blue_green = local_with("prod", |prod| prod.as_object_mut().unwrap().remove("blue_green").map(drop).unwrap());
        let error = StageConfig::parse(&without_blue_green).unwrap_err();
        assert_eq!(error, StageConfigError::ProdWithoutBlueGreen);
        assert!(error.to_string().contains("prod settings have no blue_green"), "{error}");

        let without_tests = local_with("test", |test| test["tests"] = json!([]));
        let error = StageConfig::parse(&without_tests).unwrap_err();
        assert_eq!(error, StageConfigError::TestWithoutCases);
        assert!(error.to_string().contains("test settings have no tests"), "{error}");
        let omitted = local_with("test", |test| test.as_object_mut().unwrap().remove("tests").map(drop).unwrap());
        assert_eq!(StageConfig::parse(&omitted).unwrap_err(), StageConfigError::TestWithoutCases);
    }

    #[test]
    fn the_local_example_is_valid() {
        let config = StageConfig::parse(crate::config::LOCAL_STAGE_CONFIG).unwrap();
        assert_eq!(config.stage(Stage::Test).endpoint_template, EndpointNameTemplate::default());
        assert!(config.stage(Stage::Prod).blue_green.is_some() && !config.stage(Stage::Test).tests.is_empty());
    }

    #[test]
    fn the_reference_job_event_parses_without_its_credentials() {
        let mut event: serde_json::Value = serde_json::from_str(include_str!("../../../../events/codepipeline-job-aws-docs.json")).unwrap();
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
        let event: serde_json::Value = serde_json::from_str(include_str!("../../../../events/codepipeline-job-aws-docs.json")).unwrap();
        let error = PipelineJob::parse(&event).unwrap_err();
        assert!(matches!(error, JobError::Parameters(_)), "{error}");
        assert_eq!(PipelineJob::id_of(&event), Some("11111111-abcd-1111-abcd-111111abcdef"));
        assert!(PipelineJob::parse(&json!({"x": 1})).is_err());
    }

    #[test]
    fn stage_config_needs_both_stages() {
        let test = json!({"account": "333333333333", "deploy_role": "r", "execution_role_arn": "arn:aws:iam::333333333333:role/x", "instance_type": "ml.m5.large",
            "tests": [{"name": "scores", "content_type": "text/csv", "payload": "1", "max_latency_ms": 100}]});
        let only_test = json!({ "test": test }).to_string();
        assert_eq!(StageConfig::parse(&only_test), Err(StageConfigError::MissingStage(Stage::Prod)));
        let mut prod = test.clone();
        prod["blue_green"] = json!({"alarms": ["a"]});
        let both = json!({ "test": test, "prod": prod }).to_string();
        assert_eq!(StageConfig::parse(&both).unwrap().stage(Stage::Prod).instance_count, 1);
        let error = StageConfig::parse(&json!({ "test": { "account": "1" }, "prod": prod }).to_string()).unwrap_err();
        assert!(matches!(error, StageConfigError::InvalidStage { ref stage, .. } if stage == "test"), "{error}");
    }
}
