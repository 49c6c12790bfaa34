//! A dev rejection of a promoted version reaches what runs (record-outcome, on promote-model's
//! `ModelRevoked`): the prod approval that waits for the version is rejected with the reason, an
//! execution of it still running is stopped, and each stage endpoint that serves it goes back to
//! the previous good version (none: test deletes its endpoint, prod keeps serving and people are
//! told at high severity). The ledger, not the event, says the version is revoked; `plan` decides
//! what to do with each execution and endpoint; every step is audited under the dev rejection's
//! event id, so a redelivery repeats no step that was done and finishes one that was begun.

pub mod plan;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::domain::audit::{AuditAction, AuditEntry};
use crate::domain::deploy::{deployment_name, StageSettings};
use crate::domain::event::EventError;
use crate::domain::ids::{AccountId, ModelPackageArn, Stage};
use crate::domain::ledger::{DeploymentRecord, DeploymentState, PromotionRecord, PromotionState};
use crate::domain::pipeline::{PipelineStage, APPROVAL_ACTION};
use crate::domain::revocation::{ModelRevoked, RevokedDelivery};
use crate::failure::Failure;
use crate::ports::{ActionRunStatus, EndpointState, Endpoints, ExecutionView, PendingApproval, PortError, Settled};

use super::endpoint::EndpointError;
use super::rollback::{put_in_service, ModelPast, RollbackError};
use super::{DeployConfig, DeployPorts};
use plan::{EndpointFacts, EndpointStep, ExecutionFacts, ExecutionStep};

/// Why a revocation did not reach all it should.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] EventError),
    #[error("the event is from account {0}, not the central account")]
    NotCentral(AccountId),
    #[error("the ledger does not hold {package} revoked ({found}): nothing was stopped or rolled back")]
    NotRevoked { package: ModelPackageArn, found: String },
    #[error("the revocation of {package} is not through: {undone}; done: {done}")]
    Unfinished { package: ModelPackageArn, done: String, undone: String, retryable: bool },
    /// An endpoint that could not be brought where the revocation needs it.
    #[error(transparent)]
    Endpoint(#[from] RollbackError),
    #[error(transparent)]
    Aws(#[from] PortError),
}

impl Failure for RevocationError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Aws(port) => port.is_retryable(),
            Self::Endpoint(endpoint) => endpoint.is_retryable(),
            Self::Unfinished { retryable, .. } => *retryable,
            _ => false,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::InvalidEvent(_) => "InvalidEvent",
            Self::NotCentral(_) => "NotCentralAccount",
            Self::NotRevoked { .. } => "NotRevoked",
            Self::Unfinished { .. } => "RevocationUnfinished",
            Self::Endpoint(endpoint) => endpoint.name(),
            Self::Aws(port) => port.name(),
        }
    }
}

/// What the revocation did, or found done, with each execution and endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reached {
    pub package: ModelPackageArn,
    pub steps: Vec<String>,
}

/// Kept at the end of the invocation for the records and audit entries after the last wait.
const AFTER_THE_WAITS: Duration = Duration::from_secs(20);
/// StopPipelineExecution's `reason` and PutApprovalResult's `summary` hold at most this many characters.
const STOP_REASON_MAX: usize = 200;
const APPROVAL_SUMMARY_MAX: usize = 512;

pub async fn reach_revocation(ports: &DeployPorts, config: &DeployConfig, event: &Value, deadline: DateTime<Utc>) -> Result<Reached, RevocationError> {
    let delivery = ModelRevoked::parse(event)?;
    if let Some(account) = delivery.account.clone().filter(|account| account != &config.central_account) {
        return Err(RevocationError::NotCentral(account));
    }
    let record = revoked_record(ports, &delivery).await?;
    let package = delivery.revoked.central_package.clone();
    let reason = format!("revoked in dev: {}", record.reason.as_deref().unwrap_or("the source version was rejected"));
    let trail = ports.audit.history(&package).await?;
    let mut reach = Reach { ports, config, package, key: record.event_id, reason, trail, deadline, done: Vec::new(), undone: Vec::new(), retryable: false };
    reach.executions().await;
    reach.endpoints().await;
    reach.finish()
}

/// The ledger's record of the promotion that made the version, which must say it is revoked.
/// The event only names the version: a `ModelRevoked` for a version the ledger holds otherwise
/// touches nothing, and its refusal is audited.
async fn revoked_record(ports: &DeployPorts, delivery: &RevokedDelivery) -> Result<PromotionRecord, RevocationError> {
    let central = &delivery.revoked.central_package;
    let record = match ports.promotions.promotion_of(central).await? {
        Some(record) => Some(record),
        // Promoted before the ledger kept a pointer from the central version: the record is
        // found by its source, and must name this central version.
        None => ports.promotions.get(&delivery.revoked.source_package).await?,
    };
    let found = match record {
        Some(record) if record.central_package.as_ref() == Some(central) && record.state == PromotionState::Revoked => return Ok(record),
        Some(record) if record.central_package.as_ref() == Some(central) => record.state.as_str().to_owned(),
        _ => "no promotion of it".to_owned(),
    };
    let detail = json!({ "reason": format!("the ledger holds {found}"), "named_source": delivery.revoked.source_package });
    ports.audit.append(&AuditEntry::now(central, &delivery.id, AuditAction::RevocationRefused, detail)).await?;
    warn!(event_id = %delivery.id, package = %central, found, decision = "revocation-refused", "revocation");
    Err(RevocationError::NotRevoked { package: central.clone(), found })
}

struct Reach<'a> {
    ports: &'a DeployPorts,
    config: &'a DeployConfig,
    package: ModelPackageArn,
    /// The dev rejection's event id: every step's audit entry is keyed under it.
    key: String,
    reason: String,
    /// The version's audit trail as the revocation began: what an earlier delivery did.
    trail: Vec<AuditEntry>,
    deadline: DateTime<Utc>,
    done: Vec<String>,
    undone: Vec<String>,
    retryable: bool,
}

impl Reach<'_> {
    /// Each execution on its own: one that cannot be looked at or acted on is named in the
    /// error, and the others, and the endpoints, are still seen to.
    async fn executions(&mut self) {
        let waiting = self.ports.runs.pending_approval(&self.config.pipeline, PipelineStage::ApproveProd.as_str(), APPROVAL_ACTION).await;
        let listed = match waiting {
            Ok(waiting) => self.known_executions(waiting.as_ref()).await.map(|ids| (waiting, ids)),
            Err(error) => Err(error.into()),
        };
        let (waiting, ids) = match listed {
            Ok(listed) => listed,
            Err(error) => return self.note("the version's executions".to_owned(), Err(error)),
        };
        for execution_id in ids {
            let result = self.execution(&execution_id, waiting.as_ref()).await;
            self.note(format!("execution {execution_id}"), result);
        }
    }

    async fn execution(&self, execution_id: &str, waiting: Option<&PendingApproval>) -> Result<String, RevocationError> {
        let view = self.ports.runs.execution(&self.config.pipeline, execution_id).await?;
        let token = waiting.filter(|w| w.execution_id.as_deref() == Some(execution_id)).map(|w| w.token.as_str());
        let step = plan::execution_step(&self.package, &ExecutionFacts { view: view.as_ref(), waiting_approval: token });
        self.execution_step(execution_id, &step, view.as_ref()).await
    }

    /// The executions the ledger holds for the version (start-deployment's items, and the
    /// `pipeline-started` entries of executions started before it wrote them), and the one whose
    /// approval waits when CodePipeline says it runs for the version (one started by hand).
    async fn known_executions(&self, waiting: Option<&PendingApproval>) -> Result<Vec<String>, RevocationError> {
        let mut ids = self.ports.starts.executions_of(&self.package).await?;
        let started = self.trail.iter().filter(|e| e.action == AuditAction::PipelineStarted).filter_map(|e| e.detail["execution_id"].as_str());
        ids.extend(started.map(str::to_owned));
        if let Some(waiting) = waiting.and_then(|w| w.execution_id.as_ref()).filter(|id| !ids.contains(id)) {
            if self.ports.runs.execution_package(&self.config.pipeline, waiting).await?.as_ref() == Some(&self.package) {
                ids.push(waiting.clone());
            }
        }
        let mut seen = HashSet::new();
        ids.retain(|id| seen.insert(id.clone()));
        Ok(ids)
    }

    async fn execution_step(&self, execution_id: &str, step: &ExecutionStep, view: Option<&ExecutionView>) -> Result<String, RevocationError> {
        let pipeline = &self.config.pipeline;
        let status = view.map(|v| format!("{:?}", v.status));
        let (action, said, detail) = match step {
            ExecutionStep::Leave(left) => return Ok(format!("left: {left}")),
            ExecutionStep::RejectApproval { token } => {
                let summary = within(&self.reason, APPROVAL_SUMMARY_MAX);
                self.ports.runs.answer_approval(pipeline, PipelineStage::ApproveProd.as_str(), APPROVAL_ACTION, token, false, &summary).await?;
                let detail = json!({ "execution_id": execution_id, "status": status, "reason": self.reason });
                (AuditAction::RevocationApprovalRejected, "its prod approval rejected".to_owned(), detail)
            }
            ExecutionStep::Stop => {
                // What the stop abandons, as CodePipeline reports it: a deployment cut short is
                // the endpoints' step's to take back.
                let runs = self.ports.runs.action_runs(pipeline, execution_id).await?;
                let abandoned: Vec<String> =
                    runs.iter().filter(|run| run.status == ActionRunStatus::InProgress).map(|run| format!("{}.{}", run.stage, run.action)).collect();
                self.ports.runs.stop(pipeline, execution_id, &within(&self.reason, STOP_REASON_MAX)).await?;
                let detail = json!({ "execution_id": execution_id, "status": status, "abandoned": abandoned, "reason": self.reason });
                (
                    AuditAction::RevocationExecutionStopped,
                    format!("stopped, abandoning {}", if abandoned.is_empty() { "no running action".to_owned() } else { abandoned.join(", ") }),
                    detail,
                )
            }
        };
        self.audit(&self.package, execution_id, action, detail).await?;
        Ok(said)
    }

    async fn endpoints(&mut self) {
        let past = match ModelPast::load(self.ports, self.package.group()).await {
            Ok(past) => past,
            Err(error) => return self.note("the stage endpoints".to_owned(), Err(error.into())),
        };
        for stage in [Stage::Test, Stage::Prod] {
            let settings = self.config.stages.stage(stage);
            let endpoint = settings.endpoint_name(self.package.group(), stage);
            let result = self.endpoint(&past, stage, settings, &endpoint).await;
            self.note(format!("{stage} endpoint {endpoint}"), result);
        }
    }

    async fn endpoint(&self, past: &ModelPast, stage: Stage, settings: &StageSettings, endpoint: &str) -> Result<String, RevocationError> {
        let endpoints = self.ports.stages.endpoints(settings).await?;
        let mut live = endpoints.describe_endpoint(endpoint).await?;
        let record = self.ports.deployments.deployment(stage, endpoint).await?;
        let key = format!("{}:{stage}", self.key);
        let earlier: Vec<&AuditEntry> = self.trail.iter().filter(|e| e.event_id == key).collect();
        let begun: Option<ModelPackageArn> =
            earlier.iter().find(|e| e.action == AuditAction::RevocationRollbackStarted).and_then(|e| e.detail["to"].as_str()).and_then(|to| to.parse().ok());
        let finished = earlier
            .iter()
            .any(|e| matches!(e.action, AuditAction::RevocationRolledBack | AuditAction::RevocationEndpointDeleted | AuditAction::RevocationStillServing));
        let lookback = past.previous_good(self.ports.central_registry.as_ref(), stage, endpoint, &self.package).await?;
        let step = |live: Option<&EndpointState>| {
            let facts = EndpointFacts { stage, live, record: record.as_ref(), begun: begun.as_ref(), finished, previous_good: lookback.target.as_ref() };
            plan::endpoint_step(&self.package, &facts)
        };
        let mut next = step(live.as_ref());
        if matches!(next, EndpointStep::Busy(_)) {
            // A deployment of the revoked version is landing (its execution stopped above): it is
            // let land, within this invocation, and taken back.
            endpoints.wait_until_in_service(endpoint, self.wait_bound()).await?;
            live = endpoints.describe_endpoint(endpoint).await?;
            next = step(live.as_ref());
        }
        let here = Here { endpoints: endpoints.as_ref(), stage, endpoint, record: record.as_ref(), settings };
        let changing = live.as_ref().is_some_and(|s| s.status.is_transitional());
        match next {
            EndpointStep::Leave(left) => Ok(format!("left: {left}")),
            EndpointStep::Busy(status) => Err(busy(endpoint, &status)),
            EndpointStep::RollBack { to } => self.roll_back(&here, &to, changing).await,
            EndpointStep::Delete => self.delete(&here, changing).await,
            EndpointStep::RecordDeletion => self.deleted(&here, "the endpoint was gone already").await,
            EndpointStep::KeepServingAndAlert => self.alert(&here, &lookback.passed_over).await,
        }
    }

    /// The target is audited before the endpoint is touched: a redelivery goes on to the same
    /// version, whatever the look back finds by then.
    async fn roll_back(&self, here: &Here<'_>, to: &ModelPackageArn, changing: bool) -> Result<String, RevocationError> {
        let (stage, endpoint) = (here.stage, here.endpoint);
        let config = deployment_name(to, stage);
        let revoked_config = deployment_name(&self.package, stage);
        let detail = json!({ "stage": stage, "endpoint": endpoint, "from": self.package, "to": to, "config": config });
        self.audit(&self.package, &stage.to_string(), AuditAction::RevocationRollbackStarted, detail.clone()).await?;
        let record = |state| DeploymentRecord {
            stage,
            endpoint: endpoint.to_owned(),
            package: to.clone(),
            config: config.clone(),
            state,
            previous_config: Some(revoked_config.clone()),
            previous_package: Some(self.package.clone()),
            at: Utc::now(),
        };
        self.ports.deployments.record_deployment(&record(DeploymentState::Deploying)).await?;
        if changing {
            // SageMaker updates no endpoint that is changing: the change under way ends first.
            here.endpoints.wait_until_in_service(endpoint, self.wait_bound()).await?;
        }
        put_in_service(here.endpoints, endpoint, &config, self.wait_bound()).await?;
        self.ports.deployments.record_deployment(&record(DeploymentState::InService)).await?;
        self.audit(&self.package, &stage.to_string(), AuditAction::RevocationRolledBack, detail.clone()).await?;
        self.audit(to, &stage.to_string(), AuditAction::RestoredOnRevocation, detail).await?;
        Ok(format!("rolled back to {to} ({config})"))
    }

    async fn delete(&self, here: &Here<'_>, changing: bool) -> Result<String, RevocationError> {
        let bound = self.wait_bound();
        if changing {
            here.endpoints.wait_until_in_service(here.endpoint, bound).await?;
        }
        here.endpoints.delete_endpoint(here.endpoint).await?;
        match here.endpoints.wait_until_deleted(here.endpoint, bound).await? {
            Settled::Absent => self.deleted(here, "deleted: no earlier version may be returned to").await,
            Settled::StillChanging => Err(busy(here.endpoint, "still being deleted")),
            Settled::As(state) => Err(busy(here.endpoint, &format!("{:?} after its deletion", state.status))),
        }
    }

    async fn deleted(&self, here: &Here<'_>, how: &str) -> Result<String, RevocationError> {
        if let Some(mut record) = here.record.filter(|r| r.package == self.package).cloned() {
            record.state = DeploymentState::RolledBack;
            record.at = Utc::now();
            self.ports.deployments.record_deployment(&record).await?;
        }
        let detail = json!({ "stage": here.stage, "endpoint": here.endpoint, "note": how });
        self.audit(&self.package, &here.stage.to_string(), AuditAction::RevocationEndpointDeleted, detail).await?;
        Ok(how.to_owned())
    }

    /// Told first, audited after: a crash between the two tells people twice rather than never.
    async fn alert(&self, here: &Here<'_>, passed_over: &[String]) -> Result<String, RevocationError> {
        let (group, version) = (self.package.group(), self.package.version());
        let subject = format!("HIGH SEVERITY: prod still serves revoked {group} v{version}: act now");
        let passed = if passed_over.is_empty() { "none ran there before it".to_owned() } else { format!("passed over: {}", passed_over.join("; ")) };
        let message = format!(
            "{package} was {reason}.\n\n\
             The prod endpoint {endpoint} (account {account}) still serves it: no earlier version may be returned to \
             ({passed}). The service does not take prod down on its own.\n\n\
             What to do now: deploy an approved, unrevoked version of {group} through the pipeline (approve a new central \
             version), or, if the model must stop serving at once, delete the endpoint {endpoint} in account {account}. \
             `promote history {group}` shows the audit trail.",
            package = self.package,
            reason = self.reason,
            endpoint = here.endpoint,
            account = here.settings.account,
        );
        self.ports.approvers.notify(&subject, &message).await?;
        let detail = json!({ "stage": here.stage, "endpoint": here.endpoint, "note": "kept serving: no earlier version may be returned to", "passed_over": passed_over });
        self.audit(&self.package, &here.stage.to_string(), AuditAction::RevocationStillServing, detail).await?;
        Ok("kept serving (no earlier version may be returned to); a high-severity notification went out".to_owned())
    }

    /// An entry of this revocation, keyed on the dev rejection and the execution or stage it is about.
    async fn audit(&self, package: &ModelPackageArn, about: &str, action: AuditAction, detail: Value) -> Result<(), RevocationError> {
        Ok(self.ports.audit.append(&AuditEntry::now(package, &format!("{}:{about}", self.key), action, detail)).await?)
    }

    fn wait_bound(&self) -> Duration {
        let left = (self.deadline - Utc::now()).to_std().unwrap_or_default();
        left.saturating_sub(AFTER_THE_WAITS).max(Duration::from_secs(1))
    }

    /// One line per execution and endpoint: what was decided and done with it.
    fn note(&mut self, what: String, result: Result<String, RevocationError>) {
        match result {
            Ok(said) => {
                info!(event_id = %self.key, package = %self.package, about = %what, decision = %said, "revocation");
                self.done.push(format!("{what}: {said}"));
            }
            Err(error) => {
                warn!(event_id = %self.key, package = %self.package, about = %what, error_type = %error.error_type(), error = %error, decision = "not-done", "revocation");
                self.retryable |= error.is_retryable();
                self.undone.push(format!("{what} ({}: {error})", error.error_type()));
            }
        }
    }

    fn finish(self) -> Result<Reached, RevocationError> {
        if self.undone.is_empty() {
            info!(event_id = %self.key, package = %self.package, decision = "reached", "revocation");
            return Ok(Reached { package: self.package, steps: self.done });
        }
        warn!(event_id = %self.key, package = %self.package, undone = %self.undone.join("; "), decision = "unfinished", "revocation");
        Err(RevocationError::Unfinished { package: self.package, done: self.done.join("; "), undone: self.undone.join("; "), retryable: self.retryable })
    }
}

/// One stage's endpoint, as the revocation found it.
struct Here<'a> {
    endpoints: &'a dyn Endpoints,
    stage: Stage,
    endpoint: &'a str,
    record: Option<&'a DeploymentRecord>,
    settings: &'a StageSettings,
}

fn busy(endpoint: &str, status: &str) -> RevocationError {
    RollbackError::from(EndpointError::Busy { endpoint: endpoint.to_owned(), status: status.to_owned() }).into()
}

/// `text` within `max` characters, for the fields CodePipeline bounds.
fn within(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut kept: String = text.chars().take(max - 1).collect();
    kept.push('…');
    kept
}
