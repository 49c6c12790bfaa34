//! What a revocation does with each execution of the revoked version and with each stage's
//! endpoint, decided from what CodePipeline, the endpoints and the ledger report: pure, no I/O.

use std::fmt;

use crate::domain::deploy::deployment_name;
use crate::domain::ids::{ModelPackageArn, Stage};
use crate::domain::ledger::{DeploymentRecord, DeploymentState};
use crate::ports::{EndpointState, ExecutionStatus, ExecutionView};

/// What CodePipeline reports of one execution the ledger holds for the revoked version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionFacts<'a> {
    /// `None`: CodePipeline knows no such execution (any more).
    pub view: Option<&'a ExecutionView>,
    /// The token of the prod approval that waits in this execution, if one does.
    pub waiting_approval: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionStep {
    /// The prod approval waits for the version: the service rejects it, with the reason, and
    /// the execution ends there (nothing after the approval runs).
    RejectApproval {
        token: String,
    },
    /// Still running (deploying, testing): stopped, its running actions abandoned.
    Stop,
    Leave(ExecutionLeft),
}

/// Why an execution is left as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionLeft {
    Unknown,
    /// Its `ModelPackageArn` variable names another version: the ledger's item is not CodePipeline's word.
    OtherVersion,
    /// It ended (or is ending) already.
    Ended(ExecutionStatus),
}

impl fmt::Display for ExecutionLeft {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown => f.write_str("unknown to CodePipeline"),
            Self::OtherVersion => f.write_str("runs another version"),
            Self::Ended(status) => write!(f, "{status:?} already"),
        }
    }
}

pub fn execution_step(revoked: &ModelPackageArn, facts: &ExecutionFacts<'_>) -> ExecutionStep {
    let Some(view) = facts.view else {
        return ExecutionStep::Leave(ExecutionLeft::Unknown);
    };
    if view.package.as_ref() != Some(revoked) {
        return ExecutionStep::Leave(ExecutionLeft::OtherVersion);
    }
    match (facts.waiting_approval, &view.status) {
        (Some(token), ExecutionStatus::InProgress) => ExecutionStep::RejectApproval { token: token.to_owned() },
        (None, ExecutionStatus::InProgress) => ExecutionStep::Stop,
        (_, ended) => ExecutionStep::Leave(ExecutionLeft::Ended(ended.clone())),
    }
}

/// What the revocation knows of one stage's endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointFacts<'a> {
    pub stage: Stage,
    /// As SageMaker describes it now.
    pub live: Option<&'a EndpointState>,
    /// The ledger's deployment record of the endpoint.
    pub record: Option<&'a DeploymentRecord>,
    /// The version a rollback that this revocation began on the endpoint goes to: a redelivery
    /// finishes it, and never picks another.
    pub begun: Option<&'a ModelPackageArn>,
    /// This revocation is done with the endpoint already (rolled it back, deleted it, or told
    /// people that prod still serves the version).
    pub finished: bool,
    /// The newest version that ran on the endpoint before and that a rollback may return to
    /// (never a revoked one: `policy::rollback_fitness`).
    pub previous_good: Option<&'a ModelPackageArn>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointStep {
    /// Put back on that version's config.
    RollBack {
        to: ModelPackageArn,
    },
    /// Test, with no version to go back to: the endpoint goes.
    Delete,
    /// Test: the endpoint is gone, while the ledger still has the revoked version on it.
    RecordDeletion,
    /// Prod, with no version to go back to: it keeps serving (taking prod down is not the
    /// service's call), and people are told at high severity.
    KeepServingAndAlert,
    /// A deployment of the revoked version may be landing on it: looked at again by a redelivery.
    Busy(String),
    Leave(EndpointLeft),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointLeft {
    NotServing,
    Finished,
}

impl fmt::Display for EndpointLeft {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotServing => "does not serve the version",
            Self::Finished => "done with by this revocation already",
        })
    }
}

pub fn endpoint_step(revoked: &ModelPackageArn, facts: &EndpointFacts<'_>) -> EndpointStep {
    if facts.finished {
        return EndpointStep::Leave(EndpointLeft::Finished);
    }
    if let Some(to) = facts.begun {
        return EndpointStep::RollBack { to: to.clone() };
    }
    let on_revoked = facts.record.filter(|r| &r.package == revoked);
    match facts.live {
        None if facts.stage == Stage::Test && on_revoked.is_some_and(|r| matches!(r.state, DeploymentState::InService | DeploymentState::Deploying)) => {
            EndpointStep::RecordDeletion
        }
        None => EndpointStep::Leave(EndpointLeft::NotServing),
        Some(state) if state.config_name == deployment_name(revoked, facts.stage) => match (facts.previous_good, facts.stage) {
            (Some(to), _) => EndpointStep::RollBack { to: to.clone() },
            (None, Stage::Test) => EndpointStep::Delete,
            (None, Stage::Prod) => EndpointStep::KeepServingAndAlert,
        },
        Some(state) if state.status.is_transitional() && on_revoked.is_some_and(|r| r.state == DeploymentState::Deploying) => {
            EndpointStep::Busy(format!("{:?} from {} while the revoked version is being deployed to it", state.status, state.config_name))
        }
        Some(_) => EndpointStep::Leave(EndpointLeft::NotServing),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::ports::EndpointStatus;

    fn version(n: u32) -> ModelPackageArn {
        format!("arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-111111111111/{n}").parse().unwrap()
    }

    fn view(status: ExecutionStatus, n: u32) -> ExecutionView {
        ExecutionView { status, package: Some(version(n)) }
    }

    fn running(n: u32, stage: Stage, status: EndpointStatus) -> EndpointState {
        EndpointState { status, config_name: deployment_name(&version(n), stage), failure_reason: None, resolved_images: vec![] }
    }

    fn record(n: u32, stage: Stage, state: DeploymentState) -> DeploymentRecord {
        DeploymentRecord {
            stage,
            endpoint: format!("promoted-churn-111111111111-{stage}"),
            package: version(n),
            config: deployment_name(&version(n), stage),
            state,
            previous_config: None,
            previous_package: None,
            at: Utc::now(),
        }
    }

    fn facts<'a>(
        stage: Stage,
        live: Option<&'a EndpointState>,
        record: Option<&'a DeploymentRecord>,
        previous_good: Option<&'a ModelPackageArn>,
    ) -> EndpointFacts<'a> {
        EndpointFacts { stage, live, record, begun: None, finished: false, previous_good }
    }

    #[test]
    fn an_execution_waiting_at_the_approval_is_rejected_a_running_one_stopped_an_ended_or_foreign_one_left() {
        let revoked = version(2);
        let (in_progress, stopped, foreign) = (view(ExecutionStatus::InProgress, 2), view(ExecutionStatus::Stopped, 2), view(ExecutionStatus::InProgress, 1));
        let step = |view, waiting| execution_step(&revoked, &ExecutionFacts { view, waiting_approval: waiting });

        assert_eq!(step(Some(&in_progress), Some("tok")), ExecutionStep::RejectApproval { token: "tok".into() });
        assert_eq!(step(Some(&in_progress), None), ExecutionStep::Stop);
        assert_eq!(step(Some(&stopped), None), ExecutionStep::Leave(ExecutionLeft::Ended(ExecutionStatus::Stopped)));
        assert_eq!(step(Some(&stopped), Some("stale")), ExecutionStep::Leave(ExecutionLeft::Ended(ExecutionStatus::Stopped)));
        assert_eq!(step(Some(&foreign), Some("tok")), ExecutionStep::Leave(ExecutionLeft::OtherVersion), "CodePipeline's variable decides");
        assert_eq!(step(None, None), ExecutionStep::Leave(ExecutionLeft::Unknown));
        assert_eq!(ExecutionLeft::Ended(ExecutionStatus::Succeeded).to_string(), "Succeeded already");
    }

    #[test]
    fn an_endpoint_serving_the_version_goes_back_to_the_previous_good_one_else_test_deletes_and_prod_alerts() {
        let (revoked, good) = (version(2), version(1));
        for stage in [Stage::Test, Stage::Prod] {
            let live = running(2, stage, EndpointStatus::InService);
            let on_it = record(2, stage, DeploymentState::InService);
            assert_eq!(endpoint_step(&revoked, &facts(stage, Some(&live), Some(&on_it), Some(&good))), EndpointStep::RollBack { to: good.clone() });
            let failed = running(2, stage, EndpointStatus::Failed);
            assert_eq!(endpoint_step(&revoked, &facts(stage, Some(&failed), None, Some(&good))), EndpointStep::RollBack { to: good.clone() });
        }
        let test = running(2, Stage::Test, EndpointStatus::InService);
        assert_eq!(endpoint_step(&revoked, &facts(Stage::Test, Some(&test), None, None)), EndpointStep::Delete);
        let prod = running(2, Stage::Prod, EndpointStatus::InService);
        assert_eq!(endpoint_step(&revoked, &facts(Stage::Prod, Some(&prod), None, None)), EndpointStep::KeepServingAndAlert);
    }

    #[test]
    fn an_endpoint_on_another_version_is_left_unless_the_revoked_one_is_landing_on_it() {
        let revoked = version(2);
        let other = running(1, Stage::Prod, EndpointStatus::InService);
        let deploying = record(2, Stage::Prod, DeploymentState::Deploying);
        assert_eq!(endpoint_step(&revoked, &facts(Stage::Prod, Some(&other), Some(&deploying), None)), EndpointStep::Leave(EndpointLeft::NotServing));
        let updating = running(1, Stage::Prod, EndpointStatus::Updating);
        assert!(matches!(endpoint_step(&revoked, &facts(Stage::Prod, Some(&updating), Some(&deploying), None)), EndpointStep::Busy(_)));
        let someone_elses = record(3, Stage::Prod, DeploymentState::Deploying);
        assert_eq!(endpoint_step(&revoked, &facts(Stage::Prod, Some(&updating), Some(&someone_elses), None)), EndpointStep::Leave(EndpointLeft::NotServing));
    }

    #[test]
    fn an_absent_endpoint_is_recorded_as_deleted_in_test_only_while_the_ledger_has_the_version_on_it() {
        let revoked = version(2);
        let on_it = record(2, Stage::Test, DeploymentState::InService);
        assert_eq!(endpoint_step(&revoked, &facts(Stage::Test, None, Some(&on_it), None)), EndpointStep::RecordDeletion);
        let rolled_back = record(2, Stage::Test, DeploymentState::RolledBack);
        assert_eq!(endpoint_step(&revoked, &facts(Stage::Test, None, Some(&rolled_back), None)), EndpointStep::Leave(EndpointLeft::NotServing));
        let in_prod = record(2, Stage::Prod, DeploymentState::InService);
        assert_eq!(endpoint_step(&revoked, &facts(Stage::Prod, None, Some(&in_prod), None)), EndpointStep::Leave(EndpointLeft::NotServing));
    }

    #[test]
    fn a_redelivery_finishes_the_rollback_it_began_and_repeats_nothing_it_finished() {
        let (revoked, began_with, now_good) = (version(3), version(1), version(2));
        let live = running(3, Stage::Prod, EndpointStatus::Updating);
        let begun = EndpointFacts { begun: Some(&began_with), ..facts(Stage::Prod, Some(&live), None, Some(&now_good)) };
        assert_eq!(endpoint_step(&revoked, &begun), EndpointStep::RollBack { to: began_with.clone() }, "never another target midway");
        let alerted = EndpointFacts { finished: true, ..facts(Stage::Prod, Some(&live), None, None) };
        assert_eq!(endpoint_step(&revoked, &alerted), EndpointStep::Leave(EndpointLeft::Finished), "no second notification");
    }
}
