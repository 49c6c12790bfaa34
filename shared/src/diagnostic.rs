//! The one place domain errors become what the Lambda runtime reports.

use lambda_runtime::Diagnostic;

use crate::promotion::PromoteError;

impl From<PromoteError> for Diagnostic {
    fn from(error: PromoteError) -> Self {
        Diagnostic { error_type: error.error_type(), error_message: error.to_string() }
    }
}

impl From<crate::deployment::DeployError> for Diagnostic {
    fn from(error: crate::deployment::DeployError) -> Self {
        Diagnostic { error_type: error.error_type(), error_message: error.to_string() }
    }
}
