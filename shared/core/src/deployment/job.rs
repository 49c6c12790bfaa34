//! Every invocation of a pipeline action ends with exactly one answer to its job.

use crate::failure::Failure;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::domain::deploy::OutputVariables;
use crate::ports::{FailureKind, PipelineJobs, PortResult};

use super::error::DeployError;

/// CodePipeline keeps at most this much of a failure message.
const MESSAGE_MAX: usize = 5000;
/// Kept at the end of an invocation for the answer to its job.
const ANSWER_TIME: Duration = Duration::from_secs(5);

/// When the work of an invocation that ends at `deadline` must stop for the job to be answered,
/// on tokio's clock (which tests pause and advance).
pub(crate) fn answer_by(deadline: DateTime<Utc>) -> Instant {
    let now = Instant::now();
    let end = now + (deadline - Utc::now()).to_std().unwrap_or_default();
    end.checked_sub(ANSWER_TIME).unwrap_or(now).max(now)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Finished; `variables` become the action's output variables (none for most actions).
    Done { summary: String, variables: OutputVariables },
    /// Not finished: CodePipeline invokes again with this token.
    Continue { token: String, summary: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "job_result", rename_all = "snake_case")]
pub enum JobOutcome {
    Succeeded {
        summary: String,
        #[serde(skip_serializing_if = "OutputVariables::is_empty")]
        variables: OutputVariables,
    },
    Continuing {
        summary: String,
        continuation: String,
    },
    Failed {
        error_type: String,
        message: String,
    },
}

/// Answers the job with the step's result: success, success with a continuation token, or
/// failure with a message a person can act on. Only a failed answer is an error of the function.
pub async fn answer_job(jobs: &dyn PipelineJobs, job_id: &str, step: Result<Step, DeployError>) -> Result<JobOutcome, DeployError> {
    match step {
        Ok(Step::Done { summary, variables }) => {
            let answered =
                if variables.is_empty() { jobs.succeed(job_id, None, &summary).await } else { jobs.succeed_with_variables(job_id, &summary, &variables).await };
            settled(job_id, answered)?;
            let names = variables.keys().map(String::as_str).collect::<Vec<_>>().join(",");
            info!(job_id, decision = "succeeded", summary = %summary, variables = %names, "job answered");
            Ok(JobOutcome::Succeeded { summary, variables })
        }
        Ok(Step::Continue { token, summary }) => {
            settled(job_id, jobs.succeed(job_id, Some(&token), &summary).await)?;
            info!(job_id, decision = "continue", summary = %summary, "job answered");
            Ok(JobOutcome::Continuing { summary, continuation: token })
        }
        Err(error) => {
            let mut message = error.to_string();
            if message.len() > MESSAGE_MAX {
                let cut = (0..=MESSAGE_MAX).rev().find(|i| message.is_char_boundary(*i)).unwrap_or(0);
                message.truncate(cut);
            }
            settled(job_id, jobs.fail(job_id, &message).await)?;
            warn!(job_id, decision = "failed", error_type = %error.error_type(), error = %message, "job answered");
            Ok(JobOutcome::Failed { error_type: error.error_type(), message })
        }
    }
}

/// A job takes one answer. A redelivered invocation whose first answer went through (its
/// reply was lost) finds the job settled: CodePipeline has moved on with that first answer.
fn settled(job_id: &str, answered: PortResult<()>) -> Result<(), DeployError> {
    match answered {
        Err(error) if error.kind == FailureKind::Conflict => {
            info!(job_id, decision = "already-answered", %error, "job answered by an earlier delivery; this answer is dropped");
            Ok(())
        }
        other => Ok(other?),
    }
}
