//! deploy-model: puts one central version on a stage's endpoint and waits until it really runs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::info;

use crate::domain::audit::{AuditAction, AuditEntry};
use crate::domain::deploy::{deployment_name, OutputVariables, PipelineJob, StageSettings};
use crate::domain::event::ApprovalStatus;
use crate::domain::fingerprint::ReleaseFingerprint;
use crate::domain::ids::{ModelPackageArn, Stage};
use crate::domain::ledger::{DeploymentRecord, DeploymentState};
use crate::failure::Failure;
use crate::ports::{EndpointConfigSpec, EndpointStatus, ModelSpec, PortError};

use super::endpoint::EndpointError;
use super::gate::{self, GateError, Refusal};
use super::job::{answer_by, run_job, ActionError, JobOutcome, Step};
use super::policy::{self, OnRecreate, OnStart, OnWait};
use super::{DeployConfig, DeployPorts};

/// What can stop a deployment, as deploy-model fails its job.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{package} is {status}, not Approved in the central registry")]
    NotApproved { package: ModelPackageArn, status: String },
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("endpoint {endpoint} runs {running}, not the requested {requested}: SageMaker rolled the update back")]
    SilentRollback { endpoint: String, running: String, requested: String },
    #[error("the continuation token is not this function's: {0}")]
    BadContinuation(String),
    #[error("the invocation ran out of time while {0}")]
    OutOfTime(String),
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Aws(#[from] PortError),
}

impl Failure for DeployError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Aws(port) => port.is_retryable(),
            Self::Endpoint(endpoint) => endpoint.is_retryable(),
            Self::OutOfTime(_) => true,
            _ => false,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::NotApproved { .. } => "NotApproved",
            Self::Endpoint(endpoint) => endpoint.name(),
            Self::SilentRollback { .. } => "SilentRollback",
            Self::BadContinuation(_) => "BadContinuation",
            Self::OutOfTime(_) => "OutOfTime",
            Self::Refused(refusal) => refusal.name(),
            Self::Aws(port) => port.name(),
        }
    }
}

/// What a continuation token carries between two invocations of the same job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Progress {
    Start,
    /// A Failed endpoint is being deleted (SageMaker updates no Failed endpoint): once it is
    /// gone, it is created anew on `config`.
    Recreate {
        endpoint: String,
        config: String,
    },
    Wait {
        endpoint: String,
        config: String,
        previous_config: Option<String>,
    },
}

impl Progress {
    fn token(&self) -> String {
        serde_json::to_string(self).expect("progress serializes")
    }

    fn doing(&self) -> &'static str {
        match self {
            Self::Start => "starting the deployment",
            Self::Recreate { .. } => "recreating the endpoint",
            Self::Wait { .. } => "checking on the endpoint",
        }
    }
}

/// Answers the job before `deadline`, the end of the invocation.
pub async fn handle_deploy_job(ports: &DeployPorts, config: &DeployConfig, event: &Value, deadline: DateTime<Utc>) -> Result<JobOutcome, ActionError> {
    run_job(ports.jobs.as_ref(), event, |job| async move { deploy_step(ports, config, &job, deadline).await }).await
}

/// One step of a deployment; a transient AWS failure, or a call still unanswered when the
/// invocation must answer its job, asks CodePipeline to come back instead of failing the stage.
async fn deploy_step(ports: &DeployPorts, config: &DeployConfig, job: &PipelineJob, deadline: DateTime<Utc>) -> Result<Step, DeployError> {
    let progress = match &job.continuation {
        None => Progress::Start,
        Some(raw) => serde_json::from_str(raw).map_err(|e| DeployError::BadContinuation(e.to_string()))?,
    };
    let deployment = Deployment { ports, config, settings: config.stages.stage(job.parameters.stage), job };
    let step = async {
        match &progress {
            Progress::Start => deployment.start().await,
            Progress::Recreate { endpoint, config } => {
                deployment.continuing(endpoint, config).await?;
                deployment.recreate(endpoint, config).await
            }
            Progress::Wait { endpoint, config, previous_config } => {
                deployment.continuing(endpoint, config).await?;
                deployment.wait(endpoint, config, previous_config.as_deref()).await
            }
        }
    };
    let result = tokio::time::timeout_at(answer_by(deadline), step).await.unwrap_or_else(|_| Err(DeployError::OutOfTime(progress.doing().to_owned())));
    match result {
        Err(error) if error.is_retryable() => Ok(Step::Continue { token: progress.token(), summary: format!("will retry: {error}") }),
        other => other,
    }
}

struct Deployment<'a> {
    ports: &'a DeployPorts,
    config: &'a DeployConfig,
    settings: &'a StageSettings,
    job: &'a PipelineJob,
}

impl Deployment<'_> {
    fn package(&self) -> &ModelPackageArn {
        &self.job.parameters.model_package_arn
    }

    fn stage(&self) -> Stage {
        self.job.parameters.stage
    }

    /// Nothing reaches the stage account before every gate has confirmed the deployment.
    async fn gated<T>(&self, checked: Result<T, GateError>) -> Result<T, DeployError> {
        match checked {
            Ok(confirmed) => Ok(confirmed),
            Err(GateError::Aws(error)) => Err(error.into()),
            Err(GateError::Refused(refusal)) => {
                gate::audit_refusal(self.ports.audit.as_ref(), self.package(), &gate::RefusedAt::job("deploy-model", self.job), &refusal).await?;
                Err(refusal.into())
            }
        }
    }

    /// A continuation is this function's own token, but the caller hands it over: it may only
    /// continue this job's deployment, and only while CodePipeline still runs the job's action.
    async fn continuing(&self, endpoint: &str, config: &str) -> Result<(), DeployError> {
        let own_endpoint = self.settings.endpoint_name(self.package().group(), self.stage());
        if endpoint != own_endpoint || config != deployment_name(self.package(), self.stage()) {
            return Err(DeployError::BadContinuation(format!("it names {endpoint} on {config}, not this job's deployment to {own_endpoint}")));
        }
        self.gated(gate::confirm_job(self.ports, self.config, self.job, gate::rules::deploy_stage(self.stage())).await).await?;
        Ok(())
    }

    async fn start(&self) -> Result<Step, DeployError> {
        let cleared = self.gated(gate::clear_deployment(self.ports, self.config, self.job).await).await?;
        let central = cleared.central;
        if central.status != Some(ApprovalStatus::Approved) {
            let status = central.status.map_or("without status", |s| s.as_str()).to_owned();
            return Err(DeployError::NotApproved { package: self.package().clone(), status });
        }
        let endpoints = self.ports.stages.endpoints(self.settings).await?;
        let name = deployment_name(self.package(), self.stage());
        let endpoint = self.settings.endpoint_name(self.package().group(), self.stage());
        endpoints.ensure_model(&ModelSpec { name: &name, package: self.package(), execution_role_arn: &self.settings.execution_role_arn }).await?;
        endpoints
            .ensure_endpoint_config(&EndpointConfigSpec {
                name: &name,
                model_name: &name,
                instance_type: &self.settings.instance_type,
                instance_count: self.settings.instance_count,
            })
            .await?;
        let found = endpoints.describe_endpoint(&endpoint).await?;
        let status = found.as_ref().map(|s| s.status.clone());
        let previous_config = match (policy::on_start(found.as_ref(), &name), status) {
            (OnStart::Create, _) => {
                endpoints.create_endpoint(&endpoint, &name).await?;
                None
            }
            (OnStart::Recreate { delete_first }, Some(status)) => {
                self.started(&endpoint, &name, None, &cleared.fingerprint).await?;
                if delete_first {
                    endpoints.delete_endpoint(&endpoint).await?;
                }
                return Ok(self.recreating(endpoint, name, &status));
            }
            (OnStart::Resume, Some(status)) => return self.resume(&endpoint, &name, status, &cleared.fingerprint).await,
            (OnStart::Update { previous_config }, _) => {
                endpoints.update_endpoint(&endpoint, &name, self.settings.blue_green.as_ref()).await?;
                Some(previous_config)
            }
            (_, status) => {
                return Err(EndpointError::Busy { endpoint, status: format!("{:?}", status.unwrap_or(EndpointStatus::Other("absent".into()))) }.into())
            }
        };
        self.started(&endpoint, &name, previous_config.clone(), &cleared.fingerprint).await?;
        Ok(self.waiting(endpoint, name, previous_config))
    }

    /// Picks up a deployment an earlier delivery began. The config it replaced is gone from the
    /// endpoint by now, so the rollback target comes from what the ledger knew before.
    async fn resume(&self, endpoint: &str, config: &str, status: EndpointStatus, release: &ReleaseFingerprint) -> Result<Step, DeployError> {
        let recorded = self.ports.deployments.deployment(self.stage(), endpoint).await?;
        let previous_config = match &recorded {
            Some(record) if record.config == config => record.previous_config.clone(),
            Some(record) => Some(record.config.clone()),
            None => None,
        };
        if recorded.is_none_or(|record| record.config != config) {
            self.started(endpoint, config, previous_config.clone(), release).await?;
        }
        if status == EndpointStatus::InService {
            return self.finish(endpoint, config, previous_config.as_deref()).await;
        }
        Ok(self.waiting(endpoint.to_owned(), config.to_owned(), previous_config))
    }

    /// The audit entry goes first: a redelivery writes it again unless the record followed it,
    /// so a lost entry is repaired and never skipped.
    async fn started(&self, endpoint: &str, config: &str, previous_config: Option<String>, release: &ReleaseFingerprint) -> Result<(), DeployError> {
        let detail = json!({ "stage": self.stage(), "endpoint": endpoint, "config": config, "previous_config": previous_config, "release": release });
        self.audit(AuditAction::DeployStarted, detail).await?;
        self.record(endpoint, config, previous_config, DeploymentState::Deploying).await?;
        self.log("deploy-started", endpoint);
        Ok(())
    }

    fn recreating(&self, endpoint: String, config: String, status: &EndpointStatus) -> Step {
        self.log("recreate", &endpoint);
        let summary = format!("{endpoint} was {status:?}: waiting for its deletion to create it anew with {}", self.package());
        Step::Continue { token: Progress::Recreate { endpoint, config }.token(), summary }
    }

    /// Creates the endpoint once the failed one is gone.
    async fn recreate(&self, endpoint: &str, config: &str) -> Result<Step, DeployError> {
        let endpoints = self.ports.stages.endpoints(self.settings).await?;
        let found = endpoints.describe_endpoint(endpoint).await?;
        match (policy::on_recreate(found.as_ref(), config), found) {
            (OnRecreate::Create, _) => {
                endpoints.create_endpoint(endpoint, config).await?;
                self.log("created-anew", endpoint);
                Ok(self.waiting(endpoint.to_owned(), config.to_owned(), None))
            }
            (OnRecreate::Wait, _) => Ok(self.waiting(endpoint.to_owned(), config.to_owned(), None)),
            (OnRecreate::Delete, Some(state)) => {
                endpoints.delete_endpoint(endpoint).await?;
                Ok(self.recreating(endpoint.to_owned(), config.to_owned(), &state.status))
            }
            (OnRecreate::StillGoing, Some(state)) => Ok(self.recreating(endpoint.to_owned(), config.to_owned(), &state.status)),
            (_, state) => {
                let status = state.map_or_else(|| "absent".to_owned(), |s| format!("{:?} on {}", s.status, s.config_name));
                Err(EndpointError::Busy { endpoint: endpoint.to_owned(), status }.into())
            }
        }
    }

    fn waiting(&self, endpoint: String, config: String, previous_config: Option<String>) -> Step {
        let summary = format!("deploying {} to {endpoint} ({})", self.package(), self.stage());
        Step::Continue { token: Progress::Wait { endpoint, config, previous_config }.token(), summary }
    }

    async fn wait(&self, endpoint: &str, config: &str, previous_config: Option<&str>) -> Result<Step, DeployError> {
        let endpoints = self.ports.stages.endpoints(self.settings).await?;
        let state = endpoints.describe_endpoint(endpoint).await?.ok_or_else(|| EndpointError::Vanished(endpoint.to_owned()))?;
        match policy::on_wait(&state, config) {
            OnWait::StillChanging => {
                let wait = Progress::Wait { endpoint: endpoint.to_owned(), config: config.to_owned(), previous_config: previous_config.map(str::to_owned) };
                Ok(Step::Continue { token: wait.token(), summary: format!("{endpoint} is {:?}", state.status) })
            }
            OnWait::Done => {
                self.runs_as_pinned(endpoint, config, previous_config, &state.resolved_images).await?;
                self.finish(endpoint, config, previous_config).await
            }
            OnWait::SilentRollback => {
                self.fail(endpoint, config, previous_config, AuditAction::SilentRollback).await?;
                Err(DeployError::SilentRollback { endpoint: endpoint.to_owned(), running: state.config_name, requested: config.to_owned() })
            }
            OnWait::Failed => {
                self.fail(endpoint, config, previous_config, AuditAction::DeployFailed).await?;
                let reason = state.failure_reason.unwrap_or_else(|| format!("status {:?}", state.status));
                Err(EndpointError::Failed { endpoint: endpoint.to_owned(), reason }.into())
            }
        }
    }

    /// After the update, what the endpoint runs is checked against the release: a deployment that
    /// runs other images than the pinned digests failed, whatever SageMaker says of its status.
    async fn runs_as_pinned(&self, endpoint: &str, config: &str, previous_config: Option<&str>, resolved: &[String]) -> Result<(), DeployError> {
        if resolved.is_empty() {
            return Ok(());
        }
        let central = self.ports.central_registry.describe_package(self.package()).await?;
        let pinned: Vec<&str> = central.inference.containers.iter().map(|c| c.image.as_str()).collect();
        if let Err(refusal) = gate::rules::runs_as_pinned(self.package(), endpoint, &pinned, resolved) {
            self.fail(endpoint, config, previous_config, AuditAction::DeployFailed).await?;
            return self.gated(Err(refusal.into())).await;
        }
        Ok(())
    }

    async fn finish(&self, endpoint: &str, config: &str, previous_config: Option<&str>) -> Result<Step, DeployError> {
        let recorded = self.ports.deployments.deployment(self.stage(), endpoint).await?;
        // A redelivery of a finished job keeps the rollback target recorded by the first delivery.
        let previous = previous_config.map(str::to_owned).or_else(|| recorded.as_ref().filter(|r| r.config == config).and_then(|r| r.previous_config.clone()));
        self.record(endpoint, config, previous, DeploymentState::InService).await?;
        self.audit(AuditAction::Deployed, json!({ "stage": self.stage(), "endpoint": endpoint, "config": config })).await?;
        self.log("deployed", endpoint);
        Ok(Step::Done { summary: format!("{} runs on {endpoint} ({}) with config {config}", self.package(), self.stage()), variables: OutputVariables::new() })
    }

    async fn fail(&self, endpoint: &str, config: &str, previous_config: Option<&str>, action: AuditAction) -> Result<(), DeployError> {
        self.record(endpoint, config, previous_config.map(str::to_owned), DeploymentState::Failed).await?;
        let decision = action.to_string();
        self.audit(action, json!({ "stage": self.stage(), "endpoint": endpoint, "config": config })).await?;
        self.log(&decision, endpoint);
        Ok(())
    }

    async fn record(&self, endpoint: &str, config: &str, previous_config: Option<String>, state: DeploymentState) -> Result<(), DeployError> {
        // The version behind `previous_config`: the one recorded on it, or the one a failed or
        // rolled-back deployment (or this one, resumed) had replaced and the endpoint runs again.
        let previous_package = match (self.ports.deployments.deployment(self.stage(), endpoint).await?, previous_config.as_deref()) {
            (Some(earlier), Some(previous)) if earlier.config == previous => Some(earlier.package),
            (Some(earlier), Some(previous)) if earlier.previous_config.as_deref() == Some(previous) => earlier.previous_package,
            _ => None,
        };
        let record = DeploymentRecord {
            stage: self.stage(),
            endpoint: endpoint.to_owned(),
            package: self.package().clone(),
            config: config.to_owned(),
            state,
            previous_config,
            previous_package,
            at: Utc::now(),
        };
        Ok(self.ports.deployments.record_deployment(&record).await?)
    }

    async fn audit(&self, action: AuditAction, detail: Value) -> Result<(), DeployError> {
        Ok(self.ports.audit.append(&AuditEntry::now(self.package(), &self.job.id, action, detail)).await?)
    }

    fn log(&self, decision: &str, endpoint: &str) {
        info!(job_id = %self.job.id, package = %self.package(), stage = %self.stage(), endpoint, decision, "deployment");
    }
}

#[cfg(test)]
mod tests;
