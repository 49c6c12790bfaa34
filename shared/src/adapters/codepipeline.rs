//! CodePipeline: job answers of the Lambda actions, pipeline executions and the manual approval.

use async_trait::async_trait;
use aws_sdk_codepipeline::types::{
    ActionExecutionFilter, ActionExecutionStatus, ApprovalResult as SdkApprovalResult, ApprovalStatus, ExecutionDetails,
    FailureDetails, FailureType, PipelineVariable,
};
use aws_sdk_codepipeline::Client;

use crate::domain::ids::ModelPackageArn;
use crate::ports::{ApprovalResult, FailureKind, PendingApproval, PipelineJobs, PipelineRuns, PortError, PortResult};

use super::classify;

/// The pipeline variable carrying the exact version an execution deploys.
pub const PACKAGE_VARIABLE: &str = "ModelPackageArn";
/// CodePipeline keeps at most this much of an execution summary.
const SUMMARY_MAX: usize = 2048;

pub struct CodePipeline {
    client: Client,
}

impl CodePipeline {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn clipped(text: &str, max: usize) -> String {
    let cut = (0..=max.min(text.len())).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
    text[..cut].to_owned()
}

fn build_error(operation: &'static str, error: impl std::fmt::Display) -> PortError {
    PortError::new(operation, FailureKind::Terminal, error.to_string())
}

/// `clientRequestToken` admits letters, digits and hyphens only.
fn request_token(token: &str) -> String {
    clipped(&token.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect::<String>(), 128)
}

#[async_trait]
impl PipelineJobs for CodePipeline {
    async fn succeed(&self, job_id: &str, continuation: Option<&str>, summary: &str) -> PortResult<()> {
        self.client
            .put_job_success_result()
            .job_id(job_id)
            .set_continuation_token(continuation.map(str::to_owned))
            .execution_details(ExecutionDetails::builder().summary(clipped(summary, SUMMARY_MAX)).build())
            .send()
            .await
            .map_err(|e| classify("PutJobSuccessResult", &e))?;
        Ok(())
    }

    async fn fail(&self, job_id: &str, message: &str) -> PortResult<()> {
        let details = FailureDetails::builder()
            .r#type(FailureType::JobFailed)
            .message(clipped(message, 5000))
            .build()
            .map_err(|e| build_error("PutJobFailureResult", e))?;
        self.client
            .put_job_failure_result()
            .job_id(job_id)
            .failure_details(details)
            .send()
            .await
            .map_err(|e| classify("PutJobFailureResult", &e))?;
        Ok(())
    }
}

#[async_trait]
impl PipelineRuns for CodePipeline {
    async fn start(&self, pipeline: &str, package: &ModelPackageArn, token: &str) -> PortResult<String> {
        let variable = PipelineVariable::builder()
            .name(PACKAGE_VARIABLE)
            .value(package.as_str())
            .build()
            .map_err(|e| build_error("StartPipelineExecution", e))?;
        let out = self
            .client
            .start_pipeline_execution()
            .name(pipeline)
            .variables(variable)
            .client_request_token(request_token(token))
            .send()
            .await
            .map_err(|e| classify("StartPipelineExecution", &e))?;
        out.pipeline_execution_id()
            .map(str::to_owned)
            .ok_or_else(|| PortError::new("StartPipelineExecution", FailureKind::Retryable, "no execution id returned"))
    }

    async fn execution_package(&self, pipeline: &str, execution_id: &str) -> PortResult<Option<ModelPackageArn>> {
        let out = self
            .client
            .get_pipeline_execution()
            .pipeline_name(pipeline)
            .pipeline_execution_id(execution_id)
            .send()
            .await
            .map_err(|e| classify("GetPipelineExecution", &e))?;
        let variables = out.pipeline_execution().map(|e| e.variables()).unwrap_or_default();
        Ok(variables
            .iter()
            .find(|v| v.name() == Some(PACKAGE_VARIABLE))
            .and_then(|v| v.resolved_value())
            .and_then(|raw| raw.parse().ok()))
    }

    async fn pending_approval(&self, pipeline: &str, stage: &str, action: &str) -> PortResult<Option<PendingApproval>> {
        let out = self.client.get_pipeline_state().name(pipeline).send().await.map_err(|e| classify("GetPipelineState", &e))?;
        let Some(stage_state) = out.stage_states().iter().find(|s| s.stage_name() == Some(stage)) else {
            return Ok(None);
        };
        let waiting = stage_state
            .action_states()
            .iter()
            .filter(|a| a.action_name() == Some(action))
            .filter_map(|a| a.latest_execution())
            .find(|e| e.status() == Some(&ActionExecutionStatus::InProgress))
            .and_then(|e| e.token());
        Ok(waiting.map(|token| PendingApproval {
            token: token.to_owned(),
            execution_id: stage_state.latest_execution().map(|e| e.pipeline_execution_id().to_owned()),
        }))
    }

    async fn answer_approval(&self, pipeline: &str, stage: &str, action: &str, token: &str, approve: bool, summary: &str) -> PortResult<()> {
        let status = if approve { ApprovalStatus::Approved } else { ApprovalStatus::Rejected };
        let result = SdkApprovalResult::builder()
            .status(status)
            .summary(clipped(summary, 512))
            .build()
            .map_err(|e| build_error("PutApprovalResult", e))?;
        self.client
            .put_approval_result()
            .pipeline_name(pipeline)
            .stage_name(stage)
            .action_name(action)
            .token(token)
            .result(result)
            .send()
            .await
            .map_err(|e| classify("PutApprovalResult", &e))?;
        Ok(())
    }

    async fn approval_result(&self, pipeline: &str, execution_id: &str, action: &str) -> PortResult<Option<ApprovalResult>> {
        let out = self
            .client
            .list_action_executions()
            .pipeline_name(pipeline)
            .filter(ActionExecutionFilter::builder().pipeline_execution_id(execution_id).build())
            .send()
            .await
            .map_err(|e| classify("ListActionExecutions", &e))?;
        let detail = out.action_execution_details().iter().find(|d| d.action_name() == Some(action));
        Ok(detail.and_then(|d| {
            let approved = match d.status()? {
                ActionExecutionStatus::Succeeded => true,
                ActionExecutionStatus::Failed => false,
                _ => return None,
            };
            let comment = d.output().and_then(|o| o.execution_result()).and_then(|r| r.external_execution_summary());
            Some(ApprovalResult { approved, by: d.updated_by().map(str::to_owned), comment: comment.map(str::to_owned) })
        }))
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_codepipeline::operation::put_job_failure_result::PutJobFailureResultOutput;
    use aws_sdk_codepipeline::operation::put_job_success_result::PutJobSuccessResultOutput;
    use aws_sdk_codepipeline::operation::get_pipeline_state::GetPipelineStateOutput;
    use aws_sdk_codepipeline::operation::put_approval_result::PutApprovalResultOutput;
    use aws_sdk_codepipeline::types::{ActionExecution, ActionState, StageExecution, StageExecutionStatus, StageState};
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    use super::*;

    #[tokio::test]
    async fn a_job_success_carries_the_continuation_token_and_a_clipped_summary() {
        let rule = mock!(Client::put_job_success_result)
            .match_requests(|r| {
                r.job_id() == Some("job-1")
                    && r.continuation_token() == Some("{\"phase\":\"wait\"}")
                    && r.execution_details().and_then(|d| d.summary()).map(str::len) == Some(SUMMARY_MAX)
            })
            .then_output(|| PutJobSuccessResultOutput::builder().build());
        let pipeline = CodePipeline::new(mock_client!(aws_sdk_codepipeline, RuleMode::Sequential, [&rule]));

        pipeline.succeed("job-1", Some("{\"phase\":\"wait\"}"), &"s".repeat(3000)).await.unwrap();

        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_second_answer_to_a_settled_job_is_a_conflict() {
        use aws_sdk_codepipeline::operation::put_job_success_result::PutJobSuccessResultError;
        use aws_sdk_codepipeline::types::error::InvalidJobStateException;
        let rule = mock!(Client::put_job_success_result).then_error(|| {
            PutJobSuccessResultError::InvalidJobStateException(
                InvalidJobStateException::builder()
                    .message("The job was in an invalid state: Succeeded")
                    .meta(aws_sdk_codepipeline::error::ErrorMetadata::builder().code("InvalidJobStateException").build())
                    .build(),
            )
        });
        let pipeline = CodePipeline::new(mock_client!(aws_sdk_codepipeline, RuleMode::Sequential, [&rule]));

        let error = pipeline.succeed("job-1", None, "deployed").await.unwrap_err();

        assert_eq!(error.kind, FailureKind::Conflict, "{error}");
    }

    #[tokio::test]
    async fn a_job_failure_says_why() {
        let rule = mock!(Client::put_job_failure_result)
            .match_requests(|r| {
                let details = r.failure_details().unwrap();
                r.job_id() == Some("job-2") && details.r#type() == &FailureType::JobFailed && details.message() == "endpoint failed"
            })
            .then_output(|| PutJobFailureResultOutput::builder().build());
        let pipeline = CodePipeline::new(mock_client!(aws_sdk_codepipeline, RuleMode::Sequential, [&rule]));

        pipeline.fail("job-2", "endpoint failed").await.unwrap();

        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn the_approval_token_is_found_and_answered() {
        let state = mock!(Client::get_pipeline_state).then_output(|| {
            let waiting = ActionState::builder()
                .action_name("ApproveProd")
                .latest_execution(ActionExecution::builder().status(ActionExecutionStatus::InProgress).token("tok-9").build())
                .build();
            let stage = StageState::builder()
                .stage_name("ApproveProd")
                .action_states(waiting)
                .latest_execution(StageExecution::builder().pipeline_execution_id("exec-1").status(StageExecutionStatus::InProgress).build().unwrap())
                .build();
            GetPipelineStateOutput::builder().stage_states(stage).build()
        });
        let answer = mock!(Client::put_approval_result)
            .match_requests(|r| {
                r.token() == Some("tok-9")
                    && r.stage_name() == Some("ApproveProd")
                    && r.result().map(|a| (a.status().clone(), a.summary().to_owned())) == Some((ApprovalStatus::Rejected, "drift too high".into()))
            })
            .then_output(|| PutApprovalResultOutput::builder().build());
        let pipeline = CodePipeline::new(mock_client!(aws_sdk_codepipeline, RuleMode::Sequential, [&state, &answer]));

        let pending = pipeline.pending_approval("deploy", "ApproveProd", "ApproveProd").await.unwrap().unwrap();
        pipeline.answer_approval("deploy", "ApproveProd", "ApproveProd", &pending.token, false, "drift too high").await.unwrap();

        assert_eq!(pending, PendingApproval { token: "tok-9".into(), execution_id: Some("exec-1".into()) });
        assert_eq!(answer.num_calls(), 1);
    }

    #[test]
    fn request_tokens_keep_only_what_codepipeline_admits() {
        assert_eq!(request_token("844e2571-85d4_695f:b930"), "844e2571-85d4695fb930");
    }
}
