//! An operator's rollback of a stage, from the CLI: back to the newest version that ran there in
//! service before the current one, is still Approved and was not revoked in dev. `ModelPast`
//! makes the same choice for the rollback of failed tests and of a revocation.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use tracing::info;

use crate::domain::audit::{AuditAction, AuditEntry};
use crate::domain::deploy::deployment_name;
use crate::domain::ids::{GroupName, ModelPackageArn, Stage};
use crate::domain::ledger::{DeploymentRecord, DeploymentState, PromotionState};
use crate::failure::Failure;
use crate::ports::{EndpointState, EndpointStatus, Endpoints, ModelRegistry, PortError, Settled};

use super::endpoint::EndpointError;
use super::history::{history, model_promotions};
use super::policy::{self, versions_in_service, OnRollback};
use super::{DeployConfig, DeployPorts};

/// Why a stage was not rolled back.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("no earlier {stage} deployment of {model} to roll back to")]
    NothingToRollBack { model: String, stage: String },
    #[error("no earlier {stage} deployment of {model} is still Approved to roll back to ({skipped}); deploy an approved version through the pipeline instead")]
    NoApprovedRollbackTarget { model: String, stage: String, skipped: String },
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error(transparent)]
    Aws(#[from] PortError),
}

impl Failure for RollbackError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Aws(port) => port.is_retryable(),
            Self::Endpoint(endpoint) => endpoint.is_retryable(),
            _ => false,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::NothingToRollBack { .. } => "NothingToRollBack",
            Self::NoApprovedRollbackTarget { .. } => "NoApprovedRollbackTarget",
            Self::Endpoint(endpoint) => endpoint.name(),
            Self::Aws(port) => port.name(),
        }
    }
}

/// How long a rollback waits for the endpoint to settle, each time it waits.
const ROLLBACK_WAIT: Duration = Duration::from_secs(600);

/// Puts the stage's endpoint back on the newest version that ran there in service before the
/// current one, is still Approved in the central registry and not revoked in the ledger, and
/// records it.
pub async fn roll_back(ports: &DeployPorts, config: &DeployConfig, model: &GroupName, stage: Stage) -> Result<DeploymentRecord, RollbackError> {
    let settings = config.stages.stage(stage);
    let endpoint = settings.endpoint_name(model, stage);
    let current = ports.deployments.deployment(stage, &endpoint).await?.ok_or_else(|| nothing_to_roll_back(model, stage))?;
    let target = rollback_target(ports, model, stage, &endpoint, &current.package).await?;
    let target_config = deployment_name(&target, stage);
    let endpoints = ports.stages.endpoints(settings).await?;
    refuse_while_deploying(endpoints.as_ref(), &current).await?;
    put_in_service(endpoints.as_ref(), &endpoint, &target_config, ROLLBACK_WAIT).await?;
    let restored = DeploymentRecord {
        stage,
        endpoint: endpoint.clone(),
        package: target.clone(),
        config: target_config,
        state: DeploymentState::InService,
        previous_config: Some(current.config.clone()),
        previous_package: Some(current.package.clone()),
        at: chrono::Utc::now(),
    };
    ports.deployments.record_deployment(&restored).await?;
    let detail = json!({ "stage": stage, "endpoint": endpoint, "from": current.package, "to": target });
    let operator_action = format!("operator-rollback-{}", uuid::Uuid::new_v4());
    ports.audit.append(&AuditEntry::now(&current.package, &operator_action, AuditAction::RolledBackByOperator, detail.clone())).await?;
    ports.audit.append(&AuditEntry::now(&target, &operator_action, AuditAction::RestoredByOperator, detail)).await?;
    info!(event_id = %operator_action, package = %target, from = %current.package, %stage, %endpoint, decision = "rolled-back-by-operator", "rollback");
    Ok(restored)
}

fn nothing_to_roll_back(model: &GroupName, stage: Stage) -> RollbackError {
    RollbackError::NothingToRollBack { model: model.to_string(), stage: stage.to_string() }
}

/// A deployment record left `Deploying` is a deploy job under way, or one that stopped (its
/// pipeline superseded, a terminal error, the action's timeout) and never will finish. The
/// endpoint tells them apart: one still being created, updated or deleted is busy (which
/// `put_in_service` refuses too), and so is an absent one while the job may still create it.
async fn refuse_while_deploying(endpoints: &dyn Endpoints, current: &DeploymentRecord) -> Result<(), RollbackError> {
    if current.state != DeploymentState::Deploying {
        return Ok(());
    }
    let found = endpoints.describe_endpoint(&current.endpoint).await?;
    if !policy::deploy_may_still_run(current, found.as_ref(), chrono::Utc::now()) {
        return Ok(());
    }
    Err(EndpointError::Busy { endpoint: current.endpoint.clone(), status: format!("deploying {}", current.package) }.into())
}

/// The version to roll the endpoint back to: a version that failed there never ran, one
/// rejected or revoked since is passed over, and one that ran only after the version it returns
/// to is never gone back to.
async fn rollback_target(
    ports: &DeployPorts,
    model: &GroupName,
    stage: Stage,
    endpoint: &str,
    current: &ModelPackageArn,
) -> Result<ModelPackageArn, RollbackError> {
    let past = ModelPast::load(ports, model).await?;
    let lookback = past.previous_good(ports.central_registry.as_ref(), stage, endpoint, current).await?;
    match lookback.target {
        Some(target) => Ok(target),
        None if lookback.passed_over.is_empty() => Err(nothing_to_roll_back(model, stage)),
        None => Err(RollbackError::NoApprovedRollbackTarget { model: model.to_string(), stage: stage.to_string(), skipped: lookback.passed_over.join(", ") }),
    }
}

/// What the ledger knows of a model's past on its endpoints: the audit trail of its versions, and
/// which of them were revoked in dev after their promotion.
pub struct ModelPast {
    trail: Vec<AuditEntry>,
    revoked: HashSet<ModelPackageArn>,
}

/// A look back over an endpoint's versions: the one to return to, and those passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookback {
    pub target: Option<ModelPackageArn>,
    /// Each version passed over, and why (`{version} was revoked in dev`).
    pub passed_over: Vec<String>,
}

impl ModelPast {
    pub async fn load(ports: &DeployPorts, model: &GroupName) -> Result<Self, PortError> {
        let (records, trail) = tokio::try_join!(model_promotions(ports.promotions.as_ref(), model), history(ports.audit.as_ref(), model))?;
        let revoked = records.iter().filter(|r| r.state == PromotionState::Revoked).filter_map(|r| r.central_package.clone()).collect();
        Ok(Self { trail, revoked })
    }

    pub fn is_revoked(&self, package: &ModelPackageArn) -> bool {
        self.revoked.contains(package)
    }

    /// The newest version that ran in service on the endpoint before `current` and that a rollback
    /// may return to (`policy::rollback_fitness`): never `current`, never a revoked version. The
    /// registry is asked only of versions the ledger does not hold revoked.
    pub async fn previous_good(&self, registry: &dyn ModelRegistry, stage: Stage, endpoint: &str, current: &ModelPackageArn) -> Result<Lookback, PortError> {
        let mut considered = HashSet::new();
        let mut passed_over = Vec::new();
        for version in versions_in_service(&self.trail, stage, endpoint).into_iter().rev() {
            if version == current || !considered.insert(version) {
                continue;
            }
            let revoked = self.is_revoked(version);
            let status = if revoked { None } else { registry.describe_package(version).await?.status };
            match policy::rollback_fitness(revoked, status.as_ref()) {
                Ok(()) => return Ok(Lookback { target: Some(version.clone()), passed_over }),
                Err(unfit) => passed_over.push(format!("{version} {unfit}")),
            }
        }
        Ok(Lookback { target: None, passed_over })
    }
}

/// Brings `endpoint` into service on `config`, and waits until it runs it, each wait at most `bound`.
pub(super) async fn put_in_service(endpoints: &dyn Endpoints, endpoint: &str, config: &str, bound: Duration) -> Result<(), RollbackError> {
    let found = endpoints.describe_endpoint(endpoint).await?;
    match policy::on_rollback(found.as_ref(), config) {
        OnRollback::Busy => {
            let status = found.map_or_else(String::new, |state| format!("{:?}", state.status));
            return Err(EndpointError::Busy { endpoint: endpoint.to_owned(), status }.into());
        }
        OnRollback::AlreadyThere => return Ok(()),
        OnRollback::Replace => {
            endpoints.delete_endpoint(endpoint).await?;
            match endpoints.wait_until_deleted(endpoint, bound).await? {
                Settled::Absent => {}
                Settled::As(state) => return Err(failed(endpoint, state, "could not be deleted")),
                Settled::StillChanging => return Err(busy(endpoint, "still deleting the failed endpoint")),
            }
            endpoints.create_endpoint(endpoint, config).await?;
        }
        OnRollback::Update => endpoints.update_endpoint(endpoint, config, None).await?,
        OnRollback::Create => endpoints.create_endpoint(endpoint, config).await?,
    }
    match endpoints.wait_until_in_service(endpoint, bound).await? {
        Settled::As(state) if state.status == EndpointStatus::InService && state.config_name == config => Ok(()),
        Settled::As(state) => {
            let runs = format!("runs {} after the rollback", state.config_name);
            Err(failed(endpoint, state, &runs))
        }
        Settled::Absent => Err(EndpointError::Vanished(endpoint.to_owned()).into()),
        Settled::StillChanging => Err(busy(endpoint, "still updating after the rollback")),
    }
}

fn failed(endpoint: &str, state: EndpointState, otherwise: &str) -> RollbackError {
    EndpointError::Failed { endpoint: endpoint.to_owned(), reason: state.failure_reason.unwrap_or_else(|| otherwise.to_owned()) }.into()
}

fn busy(endpoint: &str, status: &str) -> RollbackError {
    EndpointError::Busy { endpoint: endpoint.to_owned(), status: status.to_owned() }.into()
}

#[cfg(test)]
mod tests;
