//! The one entry of the two pipeline actions (deploy-model, test-model): every invocation reads
//! its job and ends with exactly one answer to it.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::domain::deploy::{JobError, OutputVariables, PipelineJob};
use crate::failure::Failure;
use crate::ports::{FailureKind, PipelineJobs, PortError, PortResult};

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

/// A pipeline action's own failure: its job could not be read or answered. Anything else that
/// goes wrong is the job's failure, answered to CodePipeline.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("invalid job: {0}")]
    InvalidJob(#[from] JobError),
    #[error(transparent)]
    Aws(#[from] PortError),
}

impl Failure for ActionError {
    fn name(&self) -> &'static str {
        match self {
            Self::InvalidJob(_) => "InvalidJob",
            Self::Aws(port) => port.name(),
        }
    }

    fn is_retryable(&self) -> bool {
        matches!(self, Self::Aws(port) if port.is_retryable())
    }
}

/// Reads the job of `event`, runs `step` on it and answers the job with the step's result. A job
/// that cannot be read is answered as failed, as long as its id can be read.
pub async fn run_job<E, Work>(jobs: &dyn PipelineJobs, event: &Value, step: impl FnOnce(PipelineJob) -> Work) -> Result<JobOutcome, ActionError>
where
    E: Failure,
    Work: Future<Output = Result<Step, E>>,
{
    let job_id = PipelineJob::id_of(event).ok_or(JobError::Missing("CodePipeline.job.id"))?;
    match PipelineJob::parse(event) {
        Ok(job) => match step(job).await {
            Ok(step) => answer_job(jobs, job_id, Ok(step)).await,
            Err(error) => answer_job(jobs, job_id, Err(&error)).await,
        },
        Err(invalid) => answer_job(jobs, job_id, Err(&ActionError::InvalidJob(invalid))).await,
    }
}

/// Answers the job with the step's result: success, success with a continuation token, or
/// failure with a message a person can act on. Only a failed answer is an error of the function.
pub async fn answer_job(jobs: &dyn PipelineJobs, job_id: &str, step: Result<Step, &dyn Failure>) -> Result<JobOutcome, ActionError> {
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
fn settled(job_id: &str, answered: PortResult<()>) -> Result<(), ActionError> {
    match answered {
        Err(error) if error.kind == FailureKind::Conflict => {
            info!(job_id, decision = "already-answered", %error, "job answered by an earlier delivery; this answer is dropped");
            Ok(())
        }
        other => Ok(other?),
    }
}
