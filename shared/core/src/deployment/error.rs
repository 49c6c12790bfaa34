use crate::domain::deploy::JobError;
use crate::domain::event::EventError;
use crate::domain::ids::{AccountId, ModelPackageArn};
use crate::failure::Failure;
use crate::ports::PortError;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("invalid job: {0}")]
    InvalidJob(#[from] JobError),
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] EventError),
    #[error("the event is from account {0}, not the central account")]
    NotCentral(AccountId),
    #[error("{package} is {status}, not Approved in the central registry")]
    NotApproved { package: ModelPackageArn, status: String },
    #[error("{0} was never promoted by this service; only promoted versions are deployed")]
    NotPromoted(ModelPackageArn),
    #[error("{0} was revoked; it cannot be deployed")]
    Revoked(ModelPackageArn),
    #[error("endpoint {endpoint} is {status}: another deployment is under way")]
    EndpointBusy { endpoint: String, status: String },
    #[error("endpoint {endpoint} failed: {reason}")]
    EndpointFailed { endpoint: String, reason: String },
    #[error("endpoint {endpoint} runs {running}, not the requested {requested}: SageMaker rolled the update back")]
    SilentRollback { endpoint: String, running: String, requested: String },
    #[error("endpoint {0} disappeared during the deployment")]
    EndpointVanished(String),
    #[error("the continuation token is not this function's: {0}")]
    BadContinuation(String),
    #[error("{failed} of {total} test cases failed on {endpoint} ({names}); {aftermath}; report: {report}")]
    TestsFailed { failed: usize, total: usize, names: String, endpoint: String, aftermath: String, report: String },
    #[error("endpoint {endpoint} is {found}, not InService on {expected}, the config deploy-model made for {package}: nothing was tested and the endpoint was left as it is; run DeployTest again, then TestModel")]
    NotUnderTest { endpoint: String, package: ModelPackageArn, expected: String, found: String },
    #[error("the endpoint check and the test cases may take {needed_ms} ms, but this invocation leaves them {left_ms} ms (the rest is kept for the report, the rollback and the answer): raise test-model's timeout or lower the cases' max_latency_ms")]
    TestsOutlastInvocation { needed_ms: u128, left_ms: u128 },
    #[error("the invocation ran out of time while {0}")]
    OutOfTime(String),
    #[error("{invocations} invocations in a row ran out of time, the last while {doing}: raise test-model's timeout, lower the cases' max_latency_ms, or look for the AWS call that hangs")]
    OutOfTimeAgain { doing: String, invocations: u32 },
    #[error("the ledger has no deployment of {package} on {endpoint}, so the config to return to is unknown")]
    NoDeploymentRecord { endpoint: String, package: ModelPackageArn },
    #[error("an approval of {0} is being started by another invocation")]
    StartInProgress(String),
    #[error("no pipeline execution of {0} waits for a prod approval")]
    NoPendingApproval(String),
    #[error("no earlier {stage} deployment of {model} to roll back to")]
    NothingToRollBack { model: String, stage: String },
    #[error("no earlier {stage} deployment of {model} is still Approved to roll back to ({skipped}); deploy an approved version through the pipeline instead")]
    NoApprovedRollbackTarget { model: String, stage: String, skipped: String },
    #[error("CodePipeline does not show the result of the prod approval of execution {0} yet; a redelivery records it")]
    ApprovalResultPending(String),
    #[error(transparent)]
    Aws(#[from] PortError),
}

impl Failure for DeployError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Aws(port) => port.is_retryable(),
            Self::EndpointBusy { .. } | Self::StartInProgress(_) | Self::OutOfTime(_) | Self::ApprovalResultPending(_) => true,
            _ => false,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::InvalidJob(_) => "InvalidJob",
            Self::InvalidEvent(_) => "InvalidEvent",
            Self::NotCentral(_) => "NotCentralAccount",
            Self::NotApproved { .. } => "NotApproved",
            Self::NotPromoted(_) => "NotPromoted",
            Self::Revoked(_) => "VersionRevoked",
            Self::EndpointBusy { .. } => "EndpointBusy",
            Self::EndpointFailed { .. } => "EndpointFailed",
            Self::SilentRollback { .. } => "SilentRollback",
            Self::EndpointVanished(_) => "EndpointVanished",
            Self::BadContinuation(_) => "BadContinuation",
            Self::TestsFailed { .. } => "TestsFailed",
            Self::NotUnderTest { .. } => "EndpointNotUnderTest",
            Self::TestsOutlastInvocation { .. } => "TestsOutlastInvocation",
            Self::OutOfTime(_) => "OutOfTime",
            Self::OutOfTimeAgain { .. } => "OutOfTimeAgain",
            Self::NoDeploymentRecord { .. } => "NoDeploymentRecord",
            Self::StartInProgress(_) => "StartInProgress",
            Self::NoPendingApproval(_) => "NoPendingApproval",
            Self::NothingToRollBack { .. } => "NothingToRollBack",
            Self::NoApprovedRollbackTarget { .. } => "NoApprovedRollbackTarget",
            Self::ApprovalResultPending(_) => "ApprovalResultPending",
            Self::Aws(port) => port.operation,
        }
    }
}
