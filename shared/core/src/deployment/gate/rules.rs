//! What the sources of truth must say before a pipeline action may act, in one pure place: the
//! job is a live run of this very action (CodePipeline), the version is one the service promoted
//! and did not revoke (the ledger), it is still the release that was promoted (the registry and
//! the stored objects), and for prod it passed its tests and its approval in the same execution.

use serde_json::Value;

use crate::domain::deploy::PipelineJob;
use crate::domain::fingerprint::ReleaseFingerprint;
use crate::domain::identity::{distinct, Approver, Distinct, Gate};
use crate::domain::ids::{ModelPackageArn, Stage};
use crate::domain::ledger::{PromotionRecord, PromotionState, TestRecord};
use crate::domain::pipeline::{PipelineStage, PipelineState};
use crate::ports::{ActionRun, ActionRunStatus, ExecutionStatus, ExecutionView};

/// Why a gate refused. Every refusal leaves the stage accounts untouched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("job {job} names no pipeline execution: only a job CodePipeline runs may act (UserParameters need \"execution_id\")")]
    NoExecution { job: String },
    #[error("CodePipeline knows no execution {execution} of pipeline {pipeline}")]
    UnknownExecution { pipeline: String, execution: String },
    #[error("execution {execution} is {status}, not in progress")]
    ExecutionNotRunning { execution: String, status: String },
    #[error("execution {execution} runs {runs}, not {claimed}")]
    OtherVersion { execution: String, runs: String, claimed: ModelPackageArn },
    #[error("execution {execution} has no run of {stage} in progress with this job's parameters")]
    NotThisAction { execution: String, stage: PipelineStage },
    #[error("{package} was never promoted by the service: the ledger has no promotion of it")]
    NeverPromoted { package: ModelPackageArn },
    #[error("{package} is {state} in the ledger, not Promoted: a version revoked in dev stays revoked, whatever its registry status")]
    NotPromoted { package: ModelPackageArn, state: &'static str },
    #[error("{package} is not the release that was promoted: {what}")]
    ReleaseChanged { package: ModelPackageArn, what: String },
    #[error("{package} has no passed test run of release {fingerprint} in execution {execution}: prod takes only what passed its tests")]
    NotTested { package: ModelPackageArn, fingerprint: ReleaseFingerprint, execution: String },
    #[error("the prod approval of execution {execution} is {state}: prod takes only an approved version")]
    NotApprovedForProd { execution: String, state: String },
    #[error("the prod approval of {package} was given by {prod}, who also gave its {gate}: prod needs the decision of a second person")]
    SameApprover { package: ModelPackageArn, gate: &'static str, prod: String },
    #[error("whether the prod approver of {package} ({prod}) is another person than its {gate} approver cannot be told ({why}): an approval without a resolvable identity is never taken for a second person")]
    ApproverUnknown { package: ModelPackageArn, gate: &'static str, prod: String, why: String },
    #[error("{endpoint} runs image {running}, not one of the digests {package} was promoted with")]
    DeployedImageChanged { endpoint: String, package: ModelPackageArn, running: String },
    #[error("the event says {what} {claimed} in execution {execution}, but CodePipeline reports it {found}")]
    OutcomeContradicted { execution: String, what: String, claimed: String, found: String },
}

impl Refusal {
    pub fn name(&self) -> &'static str {
        match self {
            Self::NoExecution { .. }
            | Self::UnknownExecution { .. }
            | Self::ExecutionNotRunning { .. }
            | Self::OtherVersion { .. }
            | Self::NotThisAction { .. } => "UnconfirmedJob",
            Self::NeverPromoted { .. } => "NeverPromoted",
            Self::NotPromoted { .. } => "NotPromoted",
            Self::ReleaseChanged { .. } => "ReleaseChanged",
            Self::NotTested { .. } => "NotTested",
            Self::NotApprovedForProd { .. } => "NotApprovedForProd",
            Self::OutcomeContradicted { .. } => "OutcomeNotConfirmed",
            Self::DeployedImageChanged { .. } => "ImageChanged",
            Self::SameApprover { .. } => "SameApprover",
            Self::ApproverUnknown { .. } => "ApproverUnknown",
        }
    }
}

/// The job's execution id, which the job itself states (and CodePipeline must then confirm).
pub fn claimed_execution(job: &PipelineJob) -> Result<&str, Refusal> {
    job.parameters.execution_id.as_deref().filter(|id| !id.is_empty()).ok_or_else(|| Refusal::NoExecution { job: job.id.clone() })
}

/// The job is a run CodePipeline has in progress: its execution runs for this version, and the
/// action of `stage` runs now with exactly the parameters the job carries. A hand-made job can
/// at most repeat what the real run does.
pub fn confirm_run(job: &PipelineJob, stage: PipelineStage, pipeline: &str, execution: Option<&ExecutionView>, runs: &[ActionRun]) -> Result<(), Refusal> {
    let id = claimed_execution(job)?.to_owned();
    let execution = execution.ok_or_else(|| Refusal::UnknownExecution { pipeline: pipeline.to_owned(), execution: id.clone() })?;
    if execution.status != ExecutionStatus::InProgress {
        return Err(Refusal::ExecutionNotRunning { execution: id, status: format!("{:?}", execution.status) });
    }
    if execution.package.as_ref() != Some(&job.parameters.model_package_arn) {
        let runs = execution.package.as_ref().map_or_else(|| "no model package".to_owned(), ToString::to_string);
        return Err(Refusal::OtherVersion { execution: id, runs, claimed: job.parameters.model_package_arn.clone() });
    }
    let claimed: Option<Value> = serde_json::from_str(&job.raw_parameters).ok();
    let running = runs.iter().filter(|run| run.stage == stage.as_str()).find(|run| run.status == ActionRunStatus::InProgress);
    let same = running.and_then(|run| run.user_parameters.as_deref()).and_then(|raw| serde_json::from_str::<Value>(raw).ok());
    if claimed.is_none() || same != claimed {
        return Err(Refusal::NotThisAction { execution: id, stage });
    }
    Ok(())
}

/// The version is one the service promoted, still Promoted, with a fingerprint to check against.
pub fn promoted_release<'a>(package: &ModelPackageArn, record: Option<&'a PromotionRecord>) -> Result<&'a ReleaseFingerprint, Refusal> {
    let record = record.ok_or_else(|| Refusal::NeverPromoted { package: package.clone() })?;
    if record.state != PromotionState::Promoted {
        return Err(Refusal::NotPromoted { package: package.clone(), state: record.state.as_str() });
    }
    if record.central_package.as_ref() != Some(package) {
        return Err(Refusal::NeverPromoted { package: package.clone() });
    }
    record.fingerprint.as_ref().ok_or_else(|| Refusal::ReleaseChanged {
        package: package.clone(),
        what: "it was promoted before releases were fingerprinted: promote it again".into(),
    })
}

/// The release found now is the one promoted.
pub fn same_release(package: &ModelPackageArn, promoted: &ReleaseFingerprint, found: Result<ReleaseFingerprint, String>) -> Result<(), Refusal> {
    match found {
        Ok(found) if &found == promoted => Ok(()),
        Ok(found) => Err(Refusal::ReleaseChanged {
            package: package.clone(),
            what: format!("its fingerprint is {} now, {} when promoted (the inference spec or a model-data object changed)", found.short(), promoted.short()),
        }),
        Err(what) => Err(Refusal::ReleaseChanged { package: package.clone(), what }),
    }
}

/// Prod: the same execution tested this very release and passed, and its approval was given.
pub fn cleared_for_prod(
    package: &ModelPackageArn,
    fingerprint: &ReleaseFingerprint,
    execution: &str,
    tested: Option<&TestRecord>,
    runs: &[ActionRun],
) -> Result<(), Refusal> {
    let passed = tested.is_some_and(|t| t.passed && &t.fingerprint == fingerprint && t.stage == Stage::Test && &t.package == package);
    if !passed {
        return Err(Refusal::NotTested { package: package.clone(), fingerprint: fingerprint.clone(), execution: execution.to_owned() });
    }
    let approval = runs.iter().find(|run| run.stage == PipelineStage::ApproveProd.as_str());
    match approval.map(|run| run.status) {
        Some(ActionRunStatus::Succeeded) => Ok(()),
        other => {
            Err(Refusal::NotApprovedForProd { execution: execution.to_owned(), state: other.map_or_else(|| "not reached".to_owned(), |s| format!("{s:?}")) })
        }
    }
}

/// The endpoint runs the images the version was promoted with: every image SageMaker reports it
/// resolved is one of the pinned digests. Images not pinned by digest, or none reported, leave
/// nothing to compare.
pub fn runs_as_pinned(package: &ModelPackageArn, endpoint: &str, pinned: &[&str], resolved: &[String]) -> Result<(), Refusal> {
    let digest = |image: &str| image.split_once('@').map(|(_, digest)| digest.to_owned());
    let pinned: Vec<String> = pinned.iter().filter_map(|image| digest(image)).collect();
    if pinned.is_empty() {
        return Ok(());
    }
    match resolved.iter().find(|running| digest(running).is_none_or(|d| !pinned.contains(&d))) {
        Some(running) => Err(Refusal::DeployedImageChanged { endpoint: endpoint.to_owned(), package: package.clone(), running: running.clone() }),
        None => Ok(()),
    }
}

/// What CodePipeline itself reports of what a state-change event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    /// The newest run of the event's action; `None` when it never ran in that execution.
    Action(Option<ActionRunStatus>),
    Execution(ExecutionStatus),
}

/// Whether CodePipeline confirms a state-change event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    Confirmed,
    /// CodePipeline still shows it running: its record may lag the event; ask again later.
    Pending,
    /// CodePipeline says otherwise: the event is not what happened.
    Contradicted(String),
}

/// An event is taken for what CodePipeline reports, never for what it says: a final state must
/// be the state CodePipeline shows; a start only needs the run to exist.
pub fn confirm_outcome(claimed: &PipelineState, reported: &Reported) -> Confirmation {
    use ActionRunStatus as Run;
    use ExecutionStatus as Exec;
    let (running, agrees, found) = match reported {
        Reported::Action(None) => return Confirmation::Contradicted("not run in this execution".into()),
        Reported::Action(Some(status)) => (
            *status == Run::InProgress,
            match claimed {
                PipelineState::Started | PipelineState::Resumed => true,
                PipelineState::Succeeded => *status == Run::Succeeded,
                PipelineState::Failed => *status == Run::Failed,
                PipelineState::Abandoned | PipelineState::Canceled => matches!(status, Run::Abandoned | Run::Failed),
                _ => true,
            },
            format!("{status:?}"),
        ),
        Reported::Execution(status) => (
            *status == Exec::InProgress,
            match claimed {
                PipelineState::Started | PipelineState::Resumed => true,
                PipelineState::Succeeded => *status == Exec::Succeeded,
                PipelineState::Failed => *status == Exec::Failed,
                PipelineState::Stopping | PipelineState::Stopped => matches!(status, Exec::Stopping | Exec::Stopped),
                PipelineState::Superseded => *status == Exec::Superseded,
                PipelineState::Canceled => *status == Exec::Cancelled,
                _ => true,
            },
            format!("{status:?}"),
        ),
    };
    match (agrees, running) {
        (true, _) => Confirmation::Confirmed,
        (false, true) => Confirmation::Pending,
        (false, false) => Confirmation::Contradicted(found),
    }
}

/// Four eyes: the prod approver is, without doubt, another person than each earlier approver. An
/// approver the ledger does not know, or one that cannot be told apart, refuses as much as the
/// same person.
pub fn four_eyes(package: &ModelPackageArn, prod: &Approver, earlier: &[(Gate, Option<&Approver>)]) -> Result<(), Refusal> {
    let shown = prod.principal.clone().unwrap_or_else(|| "an unnamed principal".to_owned());
    for (gate, approver) in earlier {
        let gate = gate.as_str();
        let Some(approver) = approver else {
            let why = "the ledger records no approver of that gate".to_owned();
            return Err(Refusal::ApproverUnknown { package: package.clone(), gate, prod: shown, why });
        };
        match distinct(prod, approver) {
            Distinct::Yes => {}
            Distinct::No => return Err(Refusal::SameApprover { package: package.clone(), gate, prod: shown }),
            Distinct::Unknown => {
                let why = format!("{:?} against {:?}", prod.normalised, approver.normalised);
                return Err(Refusal::ApproverUnknown { package: package.clone(), gate, prod: shown, why });
            }
        }
    }
    Ok(())
}

/// The pipeline stage whose action deploys to `stage`.
pub fn deploy_stage(stage: Stage) -> PipelineStage {
    match stage {
        Stage::Test => PipelineStage::DeployTest,
        Stage::Prod => PipelineStage::DeployProd,
    }
}
