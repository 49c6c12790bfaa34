//! deploy-model: puts one central version on a stage's endpoint and waits until it really runs.

use crate::failure::Failure;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::info;

use crate::domain::deploy::{deployment_name, OutputVariables, PipelineJob, StageSettings};
use crate::domain::event::ApprovalStatus;
use crate::domain::ids::{ModelPackageArn, Stage};
use crate::domain::ledger::{DeploymentRecord, DeploymentState};
use crate::ports::{EndpointConfigSpec, EndpointStatus, Endpoints, ModelSpec};

use super::{answer_by, answer_job, audit, DeployConfig, DeployError, DeployPorts, JobOutcome, Step, DEPLOYED};

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
pub async fn handle_deploy_job(ports: &DeployPorts, config: &DeployConfig, event: &Value, deadline: DateTime<Utc>) -> Result<JobOutcome, DeployError> {
    let job_id = PipelineJob::id_of(event).ok_or(crate::domain::deploy::JobError::Missing("CodePipeline.job.id"))?;
    let step = match PipelineJob::parse(event) {
        Ok(job) => deploy_step(ports, config, &job, deadline).await,
        Err(invalid) => Err(invalid.into()),
    };
    answer_job(ports.jobs.as_ref(), job_id, step).await
}

/// One step of a deployment; a transient AWS failure, or a call still unanswered when the
/// invocation must answer its job, asks CodePipeline to come back instead of failing the stage.
async fn deploy_step(ports: &DeployPorts, config: &DeployConfig, job: &PipelineJob, deadline: DateTime<Utc>) -> Result<Step, DeployError> {
    let progress = match &job.continuation {
        None => Progress::Start,
        Some(raw) => serde_json::from_str(raw).map_err(|e| DeployError::BadContinuation(e.to_string()))?,
    };
    let deployment = Deployment { ports, settings: config.stages.stage(job.parameters.stage), job };
    let step = async {
        match &progress {
            Progress::Start => deployment.start().await,
            Progress::Recreate { endpoint, config } => deployment.recreate(endpoint, config).await,
            Progress::Wait { endpoint, config, previous_config } => deployment.wait(endpoint, config, previous_config.as_deref()).await,
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
        let previous_config = match endpoints.describe_endpoint(&endpoint).await? {
            None => {
                endpoints.create_endpoint(&endpoint, &name).await?;
                None
            }
            // It serves nothing and takes no update: it goes, and the version is deployed anew.
            Some(state) if state.status == EndpointStatus::Failed || state.status == EndpointStatus::Deleting => {
                self.started(&endpoint, &name, None).await?;
                if state.status == EndpointStatus::Failed {
                    endpoints.delete_endpoint(&endpoint).await?;
                }
                return Ok(self.recreating(endpoint, name, &state.status));
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

    fn recreating(&self, endpoint: String, config: String, status: &EndpointStatus) -> Step {
        self.log("recreate", &endpoint);
        let summary = format!("{endpoint} was {status:?}: waiting for its deletion to create it anew with {}", self.package());
        Step::Continue { token: Progress::Recreate { endpoint, config }.token(), summary }
    }

    /// Creates the endpoint once the failed one is gone.
    async fn recreate(&self, endpoint: &str, config: &str) -> Result<Step, DeployError> {
        let endpoints = self.ports.stages.endpoints(self.settings).await?;
        match endpoints.describe_endpoint(endpoint).await? {
            None => {
                endpoints.create_endpoint(endpoint, config).await?;
                self.log("created-anew", endpoint);
                Ok(self.waiting(endpoint.to_owned(), config.to_owned(), None))
            }
            // An earlier delivery of this job created it already.
            Some(state) if state.config_name == config && (state.status.is_transitional() || state.status == EndpointStatus::InService) => {
                Ok(self.waiting(endpoint.to_owned(), config.to_owned(), None))
            }
            Some(state) if state.status == EndpointStatus::Failed => {
                endpoints.delete_endpoint(endpoint).await?;
                Ok(self.recreating(endpoint.to_owned(), config.to_owned(), &state.status))
            }
            Some(state) if state.status == EndpointStatus::Deleting => Ok(self.recreating(endpoint.to_owned(), config.to_owned(), &state.status)),
            Some(state) => Err(DeployError::EndpointBusy { endpoint: endpoint.to_owned(), status: format!("{:?} on {}", state.status, state.config_name) }),
        }
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
        self.audit(DEPLOYED, json!({ "stage": self.stage(), "endpoint": endpoint, "config": config })).await?;
        self.log(DEPLOYED, endpoint);
        Ok(Step::Done { summary: format!("{} runs on {endpoint} ({}) with config {config}", self.package(), self.stage()), variables: OutputVariables::new() })
    }

    async fn fail(&self, endpoint: &str, config: &str, previous_config: Option<&str>, action: &str) -> Result<(), DeployError> {
        self.record(endpoint, config, previous_config.map(str::to_owned), DeploymentState::Failed).await?;
        self.audit(action, json!({ "stage": self.stage(), "endpoint": endpoint, "config": config })).await?;
        self.log(action, endpoint);
        Ok(())
    }

    async fn record(&self, endpoint: &str, config: &str, previous_config: Option<String>, state: DeploymentState) -> Result<(), DeployError> {
        // The version behind `previous_config`: the one recorded on it, or the one a failed or
        // rolled-back deployment (or this one, resumed) had replaced and the endpoint runs again.
        let previous_package = match (self.ports.ledger.deployment(self.stage(), endpoint).await?, previous_config.as_deref()) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::testing::{add_version, deadline, deploy, job_event};
    use crate::fakes::{DeployWorld, Fault, Transition};
    use crate::ports::Ledger;

    const TEST_ENDPOINT: &str = "promoted-churn-prediction-111111111111-test";
    const V1_TEST: &str = "promoted-churn-prediction-111111111111-v1-test";

    #[tokio::test]
    async fn a_failed_endpoint_is_deleted_and_created_anew_since_sagemaker_updates_no_failed_endpoint() {
        let world = DeployWorld::new(1);
        world.test.create_endpoint_for_test(TEST_ENDPOINT, "promoted-churn-prediction-111111111111-v0-test");
        world.test.endpoints.lock().unwrap().get_mut(TEST_ENDPOINT).unwrap().status = EndpointStatus::Failed;

        let outcome = deploy(&world, &world.package, Stage::Test).await;

        assert!(matches!(outcome, JobOutcome::Succeeded { .. }), "{outcome:?}");
        let calls = world.test.calls.lock().unwrap().clone();
        assert_eq!(calls, [format!("DeleteEndpoint {TEST_ENDPOINT}"), format!("CreateEndpoint {TEST_ENDPOINT} {V1_TEST}")]);
        let endpoint = world.test.endpoint(TEST_ENDPOINT).unwrap();
        assert_eq!((endpoint.status, endpoint.config.as_str()), (EndpointStatus::InService, V1_TEST));
        let record = world.ledger.deployment(Stage::Test, TEST_ENDPOINT).await.unwrap().unwrap();
        assert_eq!((record.state, record.previous_config), (DeploymentState::InService, None), "a failed test finds nothing to return to and deletes it");
        let answers = world.jobs.answers.lock().unwrap().clone();
        let first: Progress = serde_json::from_str(answers[0].continuation.as_deref().unwrap()).unwrap();
        assert_eq!(first, Progress::Recreate { endpoint: TEST_ENDPOINT.into(), config: V1_TEST.into() });
        assert_eq!(world.audit_actions(), ["deploy-started", "deployed"]);
    }

    #[tokio::test]
    async fn an_endpoint_being_deleted_is_created_anew_once_gone() {
        let world = DeployWorld::new(0);
        world.test.create_endpoint_for_test(TEST_ENDPOINT, "promoted-churn-prediction-111111111111-v0-test");
        world.test.endpoints.lock().unwrap().get_mut(TEST_ENDPOINT).unwrap().status = EndpointStatus::Deleting;

        let first = handle_deploy_job(&world.ports, &world.config, &job_event("job-1", Stage::Test, &world.package, None), deadline()).await.unwrap();
        let JobOutcome::Continuing { continuation, .. } = first else { panic!("{first:?}") };
        assert!(world.test.calls.lock().unwrap().is_empty(), "nothing is asked of an endpoint on its way out");
        world.test.endpoints.lock().unwrap().remove(TEST_ENDPOINT);
        let second =
            handle_deploy_job(&world.ports, &world.config, &job_event("job-2", Stage::Test, &world.package, Some(&continuation)), deadline()).await.unwrap();

        assert!(matches!(second, JobOutcome::Continuing { .. }), "{second:?}");
        assert_eq!(world.test.calls.lock().unwrap().as_slice(), [format!("CreateEndpoint {TEST_ENDPOINT} {V1_TEST}")]);
    }

    #[tokio::test]
    async fn an_endpoint_sagemaker_is_patching_is_left_alone_until_it_is_back_in_service() {
        let world = DeployWorld::new(0);
        world.test.create_endpoint_for_test(TEST_ENDPOINT, "promoted-churn-prediction-111111111111-v0-test");
        world.test.endpoints.lock().unwrap().get_mut(TEST_ENDPOINT).unwrap().status = EndpointStatus::SystemUpdating;

        let first = handle_deploy_job(&world.ports, &world.config, &job_event("job-1", Stage::Test, &world.package, None), deadline()).await.unwrap();

        let JobOutcome::Continuing { continuation, summary } = first else { panic!("{first:?}") };
        assert!(summary.contains("SystemUpdating"), "{summary}");
        assert_eq!(serde_json::from_str::<Progress>(&continuation).unwrap(), Progress::Start);
        assert!(world.test.calls.lock().unwrap().is_empty(), "SageMaker takes no update meanwhile");
        world.test.endpoints.lock().unwrap().get_mut(TEST_ENDPOINT).unwrap().status = EndpointStatus::InService;
        let second =
            handle_deploy_job(&world.ports, &world.config, &job_event("job-2", Stage::Test, &world.package, Some(&continuation)), deadline()).await.unwrap();
        assert!(matches!(second, JobOutcome::Continuing { .. }), "{second:?}");
        assert_eq!(world.test.calls.lock().unwrap().as_slice(), [format!("UpdateEndpoint {TEST_ENDPOINT} {V1_TEST} direct")]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_call_still_answers_the_job_before_the_deadline_and_the_next_job_goes_on() {
        let world = DeployWorld::new(0);
        world.test.fault("DescribeEndpoint", Fault::Hang);
        let started = tokio::time::Instant::now();
        let ends = Utc::now() + chrono::Duration::seconds(120);

        let first = handle_deploy_job(&world.ports, &world.config, &job_event("job-1", Stage::Test, &world.package, None), ends).await.unwrap();

        let waited = started.elapsed();
        assert!(waited >= std::time::Duration::from_secs(110) && waited < std::time::Duration::from_secs(120), "answered after {waited:?}");
        let JobOutcome::Continuing { continuation, summary } = first else { panic!("{first:?}") };
        assert!(summary.contains("ran out of time while starting the deployment"), "{summary}");
        assert_eq!(world.last_answer().job_id, "job-1");
        assert_eq!(serde_json::from_str::<Progress>(&continuation).unwrap(), Progress::Start, "the next job starts over");
        let next = job_event("job-2", Stage::Test, &world.package, Some(&continuation));
        let second = handle_deploy_job(&world.ports, &world.config, &next, Utc::now() + chrono::Duration::seconds(120)).await.unwrap();
        assert!(matches!(second, JobOutcome::Continuing { .. }), "{second:?}");
        assert_eq!(world.test.calls.lock().unwrap().as_slice(), [format!("CreateEndpoint {TEST_ENDPOINT} {V1_TEST}")]);
    }

    #[tokio::test]
    async fn the_version_to_return_to_survives_a_failed_deployment_in_between() {
        let world = DeployWorld::new(0);
        let (second, third) = (add_version(&world, 2), add_version(&world, 3));
        assert!(matches!(deploy(&world, &world.package, Stage::Prod).await, JobOutcome::Succeeded { .. }));
        *world.prod.transition.lock().unwrap() = Transition::SilentRollback;
        assert!(matches!(deploy(&world, &second, Stage::Prod).await, JobOutcome::Failed { .. }));
        *world.prod.transition.lock().unwrap() = Transition::Succeed;

        assert!(matches!(deploy(&world, &third, Stage::Prod).await, JobOutcome::Succeeded { .. }));

        let record = world.ledger.deployment(Stage::Prod, "promoted-churn-prediction-111111111111-prod").await.unwrap().unwrap();
        assert_eq!(record.package, third);
        assert_eq!(record.previous_config.as_deref(), Some("promoted-churn-prediction-111111111111-v1-prod"));
        assert_eq!(record.previous_package, Some(world.package.clone()), "version 1 runs behind version 3, not the failed version 2");
    }

    #[tokio::test]
    async fn a_redelivered_job_repeats_no_audit_entry() {
        let world = DeployWorld::new(0);
        let first = handle_deploy_job(&world.ports, &world.config, &job_event("job-1", Stage::Test, &world.package, None), deadline()).await.unwrap();
        let JobOutcome::Continuing { continuation, .. } = first else { panic!("{first:?}") };
        let last = job_event("job-2", Stage::Test, &world.package, Some(&continuation));
        assert!(matches!(handle_deploy_job(&world.ports, &world.config, &last, deadline()).await.unwrap(), JobOutcome::Succeeded { .. }));
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;

        // Lambda delivers the last invocation again: its answer is dropped, its entries too.
        let again = handle_deploy_job(&world.ports, &world.config, &last, deadline()).await.unwrap();

        assert!(matches!(again, JobOutcome::Succeeded { .. }), "{again:?}");
        assert_eq!(world.audit_actions(), ["deploy-started", "deployed"]);
        assert_eq!(world.jobs.answers.lock().unwrap().len(), 2);
    }
}
