//! What deploy-model and a rollback both meet: an endpoint that is not where they need it.

use crate::failure::Failure;

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("endpoint {endpoint} is {status}: another deployment is under way")]
    Busy { endpoint: String, status: String },
    #[error("endpoint {endpoint} failed: {reason}")]
    Failed { endpoint: String, reason: String },
    #[error("endpoint {0} disappeared during the deployment")]
    Vanished(String),
}

impl Failure for EndpointError {
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Busy { .. })
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Busy { .. } => "EndpointBusy",
            Self::Failed { .. } => "EndpointFailed",
            Self::Vanished(_) => "EndpointVanished",
        }
    }
}
