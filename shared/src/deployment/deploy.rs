//! deploy-model: puts one central version on a stage's endpoint and waits until it really runs.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::info;

use crate::domain::deploy::{deployment_name, endpoint_name, PipelineJob, StageSettings};
use crate::domain::event::ApprovalStatus;
use crate::domain::ids::{ModelPackageArn, Stage};
use crate::domain::ledger::{DeploymentRecord, DeploymentState};
use crate::ports::{EndpointConfigSpec, EndpointStatus, Endpoints, ModelSpec};

use super::{answer_job, audit, DeployConfig, DeployError, DeployPorts, JobOutcome, Step};

/// What a continuation token carries between two invocations of the same job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Progress {
    Start,
    Wait { endpoint: String, config: String, previous_config: Option<String> },
}

impl Progress {
    fn token(&self) -> String {
        serde_json::to_string(self).expect("progress serializes")
    }
}

pub async fn handle_deploy_job(ports: &DeployPorts, config: &DeployConfig, event: &Value) -> Result<JobOutcome, DeployError> {
    let job_id = PipelineJob::id_of(event).ok_or(crate::domain::deploy::JobError::Missing("CodePipeline.job.id"))?;
    let step = match PipelineJob::parse(event) {
        Ok(job) => deploy_step(ports, config, &job).await,
        Err(invalid) => Err(invalid.into()),
    };
    answer_job(ports.jobs.as_ref(), job_id, step).await
}

/// One step of a deployment; a transient AWS failure asks CodePipeline to come back instead of failing the stage.
pub async fn deploy_step(ports: &DeployPorts, config: &DeployConfig, job: &PipelineJob) -> Result<Step, DeployError> {
    let progress = match &job.continuation {
        None => Progress::Start,
        Some(raw) => serde_json::from_str(raw).map_err(|e| DeployError::BadContinuation(e.to_string()))?,
    };
    let deployment = Deployment { ports, settings: config.stages.stage(job.parameters.stage), job };
    let result = match &progress {
        Progress::Start => deployment.start().await,
        Progress::Wait { endpoint, config, previous_config } => deployment.wait(endpoint, config, previous_config.as_deref()).await,
    };
    match result {
        Err(error) if error.is_retryable() => Ok(Step::Continue { token: progress.token(), summary: format!("will retry: {error}") }),
        other => other,
    }
}

struct Deployment<'a> {
    ports: &'a DeployPorts,
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

    async fn start(&self) -> Result<Step, DeployError> {
        let central = self.ports.central_registry.describe_package(self.package()).await?;
        if central.status != Some(ApprovalStatus::Approved) {
            let status = central.status.map_or("without status", |s| s.as_str()).to_owned();
            return Err(DeployError::NotApproved { package: self.package().clone(), status });
        }
        let endpoints = self.ports.stages.endpoints(self.settings).await?;
        let name = deployment_name(self.package(), self.stage());
        let endpoint = endpoint_name(self.package().group(), self.stage());
        endpoints
            .ensure_model(&ModelSpec { name: &name, package: self.package(), execution_role_arn: &self.settings.execution_role_arn })
            .await?;
        endpoints
            .ensure_endpoint_config(&EndpointConfigSpec {
                name: &name,
                model_name: &name,
                instance_type: &self.settings.instance_type,
                instance_count: self.settings.instance_count,
            })
            .await?;
        let previous_config = match endpoints.describe_endpoint(&endpoint).await? {
            None => {
                endpoints.create_endpoint(&endpoint, &name).await?;
                None
            }
            // An earlier delivery of this job asked for this config already: its answer was lost,
            // or the job is redelivered after it finished.
            Some(state) if state.config_name == name => return self.resume(&endpoint, &name, state.status).await,
            Some(state) if state.status.is_transitional() => {
                return Err(DeployError::EndpointBusy { endpoint, status: format!("{:?}", state.status) });
            }
            Some(state) => {
                endpoints.update_endpoint(&endpoint, &name, self.settings.blue_green.as_ref()).await?;
                Some(state.config_name)
            }
        };
        self.started(&endpoint, &name, previous_config.clone()).await?;
        Ok(self.waiting(endpoint, name, previous_config))
    }

    /// Picks up a deployment an earlier delivery began. The config it replaced is gone from the
    /// endpoint by now, so the rollback target comes from what the ledger knew before.
    async fn resume(&self, endpoint: &str, config: &str, status: EndpointStatus) -> Result<Step, DeployError> {
        let recorded = self.ports.ledger.deployment(self.stage(), endpoint).await?;
        let previous_config = match &recorded {
            Some(record) if record.config == config => record.previous_config.clone(),
            Some(record) => Some(record.config.clone()),
            None => None,
        };
        if recorded.is_none_or(|record| record.config != config) {
            self.started(endpoint, config, previous_config.clone()).await?;
        }
        if status == EndpointStatus::InService {
            return self.finish(endpoint, config, previous_config.as_deref()).await;
        }
        Ok(self.waiting(endpoint.to_owned(), config.to_owned(), previous_config))
    }

    /// The audit entry goes first: a redelivery writes it again unless the record followed it,
    /// so a lost entry is repaired and never skipped.
    async fn started(&self, endpoint: &str, config: &str, previous_config: Option<String>) -> Result<(), DeployError> {
        self.audit("deploy-started", json!({ "stage": self.stage(), "endpoint": endpoint, "config": config, "previous_config": previous_config })).await?;
        self.record(endpoint, config, previous_config, DeploymentState::Deploying).await?;
        self.log("deploy-started", endpoint);
        Ok(())
    }

    fn waiting(&self, endpoint: String, config: String, previous_config: Option<String>) -> Step {
        let summary = format!("deploying {} to {endpoint} ({})", self.package(), self.stage());
        Step::Continue { token: Progress::Wait { endpoint, config, previous_config }.token(), summary }
    }

    async fn wait(&self, endpoint: &str, config: &str, previous_config: Option<&str>) -> Result<Step, DeployError> {
        let endpoints = self.ports.stages.endpoints(self.settings).await?;
        let state = endpoints.describe_endpoint(endpoint).await?.ok_or_else(|| DeployError::EndpointVanished(endpoint.to_owned()))?;
        match state.status {
            status if status.is_transitional() => {
                let wait = Progress::Wait { endpoint: endpoint.to_owned(), config: config.to_owned(), previous_config: previous_config.map(str::to_owned) };
                Ok(Step::Continue { token: wait.token(), summary: format!("{endpoint} is {status:?}") })
            }
            EndpointStatus::InService if state.config_name == config => self.finish(endpoint, config, previous_config).await,
            EndpointStatus::InService => {
                self.fail(endpoint, config, previous_config, "silent-rollback").await?;
                Err(DeployError::SilentRollback { endpoint: endpoint.to_owned(), running: state.config_name, requested: config.to_owned() })
            }
            other => {
                self.fail(endpoint, config, previous_config, "deploy-failed").await?;
                let reason = state.failure_reason.unwrap_or_else(|| format!("status {other:?}"));
                Err(DeployError::EndpointFailed { endpoint: endpoint.to_owned(), reason })
            }
        }
    }

    async fn finish(&self, endpoint: &str, config: &str, previous_config: Option<&str>) -> Result<Step, DeployError> {
        let recorded = self.ports.ledger.deployment(self.stage(), endpoint).await?;
        // A redelivery of a finished job keeps the rollback target recorded by the first delivery.
        let previous = previous_config.map(str::to_owned).or_else(|| recorded.as_ref().filter(|r| r.config == config).and_then(|r| r.previous_config.clone()));
        self.record(endpoint, config, previous, DeploymentState::InService).await?;
        self.audit("deployed", json!({ "stage": self.stage(), "endpoint": endpoint, "config": config })).await?;
        self.log("deployed", endpoint);
        Ok(Step::Done { summary: format!("{} runs on {endpoint} ({}) with config {config}", self.package(), self.stage()) })
    }

    async fn fail(&self, endpoint: &str, config: &str, previous_config: Option<&str>, action: &str) -> Result<(), DeployError> {
        self.record(endpoint, config, previous_config.map(str::to_owned), DeploymentState::Failed).await?;
        self.audit(action, json!({ "stage": self.stage(), "endpoint": endpoint, "config": config })).await?;
        self.log(action, endpoint);
        Ok(())
    }

    async fn record(&self, endpoint: &str, config: &str, previous_config: Option<String>, state: DeploymentState) -> Result<(), DeployError> {
        let previous_package = match self.ports.ledger.deployment(self.stage(), endpoint).await? {
            Some(earlier) if previous_config.as_deref() == Some(earlier.config.as_str()) => Some(earlier.package),
            Some(earlier) if earlier.config == config => earlier.previous_package,
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
        Ok(self.ports.ledger.record_deployment(&record).await?)
    }

    async fn audit(&self, action: &str, detail: Value) -> Result<(), DeployError> {
        audit(self.ports.ledger.as_ref(), self.package(), &self.job.id, action, detail).await
    }

    fn log(&self, decision: &str, endpoint: &str) {
        info!(job_id = %self.job.id, package = %self.package(), stage = %self.stage(), endpoint, decision, "deployment");
    }
}

/// Puts `endpoint` back on `config`, or deletes it when there was nothing before.
pub async fn restore(endpoints: &dyn Endpoints, endpoint: &str, previous_config: Option<&str>) -> Result<String, DeployError> {
    match previous_config {
        Some(config) => {
            endpoints.update_endpoint(endpoint, config, None).await?;
            Ok(config.to_owned())
        }
        None => {
            endpoints.delete_endpoint(endpoint).await?;
            Ok("nothing (the endpoint was deleted)".to_owned())
        }
    }
}
