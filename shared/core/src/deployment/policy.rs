//! The deployment policy, in one pure place (no I/O): what deploy-model does next with the
//! endpoint it finds, what a rollback does with it, when a deploy job may still be running, and
//! which versions a rollback may go back to. deploy.rs and rollback.rs only do the calls.

use std::fmt;

use serde_json::json;

use crate::domain::audit::AuditEntry;
use crate::domain::event::ApprovalStatus;
use crate::domain::ids::{ModelPackageArn, Stage};
use crate::domain::ledger::{DeploymentRecord, DeploymentState};
use crate::ports::{EndpointState, EndpointStatus};

/// CodePipeline's timeout of a Lambda action: no deploy job of a deployment begun earlier than
/// this can still be running.
pub const DEPLOY_ACTION_TIMEOUT: chrono::Duration = chrono::Duration::hours(1);

/// What deploy-model's first step does with the endpoint it finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnStart {
    Create,
    /// It serves nothing and takes no update (Failed, or on its way out): it goes (deleted first
    /// when Failed), and the version is deployed anew.
    Recreate {
        delete_first: bool,
    },
    /// An earlier delivery of this job asked for this config already: its answer was lost, or the
    /// job is redelivered after it finished.
    Resume,
    /// Another change is under way.
    Busy,
    Update {
        previous_config: String,
    },
}

pub fn on_start(found: Option<&EndpointState>, config: &str) -> OnStart {
    match found {
        None => OnStart::Create,
        Some(state) if state.status == EndpointStatus::Failed || state.status == EndpointStatus::Deleting => {
            OnStart::Recreate { delete_first: state.status == EndpointStatus::Failed }
        }
        Some(state) if state.config_name == config => OnStart::Resume,
        Some(state) if state.status.is_transitional() => OnStart::Busy,
        Some(state) => OnStart::Update { previous_config: state.config_name.clone() },
    }
}

/// What a step of recreating an endpoint does with what it finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnRecreate {
    /// Gone: it is created on the config.
    Create,
    /// An earlier delivery of this job created it already.
    Wait,
    /// Failed again: deleted again.
    Delete,
    /// Still being deleted.
    StillGoing,
    Busy,
}

pub fn on_recreate(found: Option<&EndpointState>, config: &str) -> OnRecreate {
    match found {
        None => OnRecreate::Create,
        Some(state) if state.config_name == config && (state.status.is_transitional() || state.status == EndpointStatus::InService) => OnRecreate::Wait,
        Some(state) if state.status == EndpointStatus::Failed => OnRecreate::Delete,
        Some(state) if state.status == EndpointStatus::Deleting => OnRecreate::StillGoing,
        Some(_) => OnRecreate::Busy,
    }
}

/// How a deployment that waits on its endpoint stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnWait {
    StillChanging,
    /// In service on the requested config: done.
    Done,
    /// In service on another config: SageMaker rolled the update back on its own.
    SilentRollback,
    Failed,
}

pub fn on_wait(state: &EndpointState, config: &str) -> OnWait {
    match state.status {
        ref status if status.is_transitional() => OnWait::StillChanging,
        EndpointStatus::InService if state.config_name == config => OnWait::Done,
        EndpointStatus::InService => OnWait::SilentRollback,
        _ => OnWait::Failed,
    }
}

/// What a rollback does with the endpoint it finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnRollback {
    /// SageMaker updates no endpoint that is changing or on its way out.
    Busy,
    /// A failed test put it back there already.
    AlreadyThere,
    /// SageMaker updates no Failed endpoint: it goes, and comes back on the config.
    Replace,
    Update,
    Create,
}

pub fn on_rollback(found: Option<&EndpointState>, config: &str) -> OnRollback {
    match found {
        Some(state) if state.status.is_transitional() || state.status == EndpointStatus::Deleting => OnRollback::Busy,
        Some(state) if state.status == EndpointStatus::InService && state.config_name == config => OnRollback::AlreadyThere,
        Some(state) if state.status == EndpointStatus::Failed => OnRollback::Replace,
        Some(_) => OnRollback::Update,
        None => OnRollback::Create,
    }
}

/// A deployment record left `Deploying` is a deploy job under way, or one that stopped (its
/// pipeline superseded, a terminal error, the action's timeout) and never will finish. The
/// endpoint tells them apart: one still being created, updated or deleted is busy, and so is an
/// absent one while the job may still create it.
pub fn deploy_may_still_run(current: &DeploymentRecord, endpoint: Option<&EndpointState>, now: chrono::DateTime<chrono::Utc>) -> bool {
    current.state == DeploymentState::Deploying
        && now - current.at < DEPLOY_ACTION_TIMEOUT
        && !endpoint.is_some_and(|s| matches!(s.status, EndpointStatus::InService | EndpointStatus::Failed))
}

/// The versions that ran in service on the endpoint, oldest first, as far as the last one: a
/// deployment puts its version last; a rollback (an operator's, or a revocation's) returns to the
/// version it restored, so the versions after it (the ones it rolled back from) are dropped.
pub fn versions_in_service<'a>(trail: &'a [AuditEntry], stage: Stage, endpoint: &str) -> Vec<&'a ModelPackageArn> {
    let mut ran: Vec<&ModelPackageArn> = Vec::new();
    for entry in trail.iter().filter(|e| ran_in_service(e, stage, endpoint)) {
        let returned_to = entry.action.returned_to().then(|| ran.iter().rposition(|v| *v == &entry.source)).flatten();
        match returned_to {
            Some(at) => ran.truncate(at + 1),
            None if ran.last() == Some(&&entry.source) => {}
            None => ran.push(&entry.source),
        }
    }
    ran
}

fn ran_in_service(entry: &AuditEntry, stage: Stage, endpoint: &str) -> bool {
    entry.action.put_in_service() && entry.detail["stage"] == json!(stage) && entry.detail["endpoint"].as_str() == Some(endpoint)
}

/// Why a version that ran on an endpoint is no version to go back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfit {
    /// Revoked in dev after its promotion, whatever the central registry says of it now: a
    /// version re-approved there by hand stays revoked in the ledger.
    Revoked,
    /// Not Approved in the central registry (rejected by its tests, for prod, or by hand).
    NotApproved(Option<ApprovalStatus>),
}

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Revoked => f.write_str("was revoked in dev"),
            Self::NotApproved(status) => write!(f, "is {}", status.as_ref().map_or("without approval status", ApprovalStatus::as_str)),
        }
    }
}

/// Whether a rollback (an operator's, a failed test's or a revocation's) may return to a version:
/// only to one the ledger does not hold revoked and the central registry holds Approved. The
/// ledger is asked first: a revoked version needs no look at the registry.
pub fn rollback_fitness(revoked: bool, status: Option<&ApprovalStatus>) -> Result<(), Unfit> {
    match status {
        _ if revoked => Err(Unfit::Revoked),
        Some(ApprovalStatus::Approved) => Ok(()),
        other => Err(Unfit::NotApproved(other.cloned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::AuditAction;

    fn ran(version: u32, action: AuditAction, endpoint: &str) -> AuditEntry {
        let package: ModelPackageArn = format!("arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-111111111111/{version}").parse().unwrap();
        AuditEntry::now(&package, &format!("e-{version}-{action}"), action, json!({ "stage": "prod", "endpoint": endpoint }))
    }

    #[test]
    fn a_revoked_version_is_never_fit_even_when_the_registry_says_approved() {
        assert_eq!(rollback_fitness(true, Some(&ApprovalStatus::Approved)), Err(Unfit::Revoked));
        assert_eq!(rollback_fitness(false, Some(&ApprovalStatus::Approved)), Ok(()));
        assert_eq!(rollback_fitness(false, Some(&ApprovalStatus::Rejected)), Err(Unfit::NotApproved(Some(ApprovalStatus::Rejected))));
        assert_eq!(rollback_fitness(false, None).unwrap_err().to_string(), "is without approval status");
        assert_eq!(Unfit::Revoked.to_string(), "was revoked in dev");
    }

    #[test]
    fn a_revocation_that_restored_a_version_drops_the_ones_after_it_as_an_operator_rollback_does() {
        let endpoint = "promoted-churn-111111111111-prod";
        let trail = [
            ran(1, AuditAction::Deployed, endpoint),
            ran(2, AuditAction::Deployed, endpoint),
            ran(3, AuditAction::Deployed, "another-endpoint"),
            ran(1, AuditAction::RestoredOnRevocation, endpoint),
        ];
        let versions: Vec<u32> = versions_in_service(&trail, Stage::Prod, endpoint).into_iter().map(ModelPackageArn::version).collect();
        assert_eq!(versions, [1]);
    }
}
