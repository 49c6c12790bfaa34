use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use promotion_core::ports::{FailureKind, PortError};

const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "TransactionInProgressException",
    "TransactionConflictException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    // InvokeEndpoint: the endpoint is still loading its model.
    "ModelNotReadyException",
];
const NOT_FOUND: &[&str] = &["ResourceNotFound", "ResourceNotFoundException", "NoSuchKey", "NotFound", "NoSuchUpload", "PipelineExecutionNotFoundException"];
/// CodePipeline says InvalidJobStateException to a second answer to one job.
// A transaction is cancelled when one of its conditions fails.
/// StopPipelineExecution: the execution is stopping already, or no longer runs.
const CONFLICT: &[&str] = &[
    "ConditionalCheckFailedException",
    "ConflictException",
    "ResourceInUse",
    "InvalidJobStateException",
    "PipelineExecutionNotStoppableException",
    "DuplicatedStopRequestException",
];

/// Sorts an SDK error into what the domain can act on. The SDK has already retried the
/// retryable ones (standard mode); what is still retryable here is worth a redelivery.
pub fn classify<E>(operation: &'static str, error: &SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = DisplayErrorContext(error).to_string();
    let kind = match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => FailureKind::Retryable,
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let text = service.err().message().unwrap_or_default();
            if service.raw().status().is_server_error() || THROTTLING.contains(&code) {
                FailureKind::Retryable
            } else if NOT_FOUND.contains(&code) || service.raw().status().as_u16() == 404 || text.contains("does not exist") {
                FailureKind::NotFound
            } else if CONFLICT.contains(&code) || text.contains("already exists") {
                FailureKind::Conflict
            } else {
                FailureKind::Terminal
            }
        }
        _ => FailureKind::Terminal,
    };
    PortError::new(operation, kind, message)
}
