//! CodePipeline: job answers of the Lambda actions, pipeline executions and the manual approval.

use async_trait::async_trait;
use aws_sdk_codepipeline::types::{
    ActionExecutionDetail, ActionExecutionFilter, ActionExecutionStatus, ApprovalResult as SdkApprovalResult, ApprovalStatus, ExecutionDetails, FailureDetails,
    FailureType, PipelineExecutionStatus, PipelineVariable,
};
use aws_sdk_codepipeline::Client;

use promotion_core::domain::deploy::OutputVariables;
use promotion_core::domain::ids::ModelPackageArn;
use promotion_core::ports::{
    ActionRun, ActionRunStatus, ApprovalResult, ExecutionStatus, ExecutionView, FailureKind, PendingApproval, PipelineJobs, PipelineRuns, PortError, PortResult,
};

use crate::errors::classify;

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

    /// `PutJobSuccessResult`: CodePipeline refuses output variables beside a continuation token,
    /// so a call carries one or the other (or neither).
    async fn put_success(&self, job_id: &str, continuation: Option<&str>, summary: &str, variables: Option<&OutputVariables>) -> PortResult<()> {
        let variables = variables.map(|v| v.iter().map(|(name, value)| (name.clone(), value.clone())).collect());
        self.client
            .put_job_success_result()
            .job_id(job_id)
            .set_continuation_token(continuation.map(str::to_owned))
            .execution_details(ExecutionDetails::builder().summary(clipped(summary, SUMMARY_MAX)).build())
            .set_output_variables(variables)
            .send()
            .await
            .map_err(|e| classify("PutJobSuccessResult", &e))?;
        Ok(())
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
        self.put_success(job_id, continuation, summary, None).await
    }

    async fn succeed_with_variables(&self, job_id: &str, summary: &str, variables: &OutputVariables) -> PortResult<()> {
        self.put_success(job_id, None, summary, Some(variables)).await
    }

    async fn fail(&self, job_id: &str, message: &str) -> PortResult<()> {
        let details = FailureDetails::builder()
            .r#type(FailureType::JobFailed)
            .message(clipped(message, 5000))
            .build()
            .map_err(|e| build_error("PutJobFailureResult", e))?;
        self.client.put_job_failure_result().job_id(job_id).failure_details(details).send().await.map_err(|e| classify("PutJobFailureResult", &e))?;
        Ok(())
    }
}

#[async_trait]
impl PipelineRuns for CodePipeline {
    async fn start(&self, pipeline: &str, package: &ModelPackageArn, token: &str) -> PortResult<String> {
        let variable =
            PipelineVariable::builder().name(PACKAGE_VARIABLE).value(package.as_str()).build().map_err(|e| build_error("StartPipelineExecution", e))?;
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

    async fn execution(&self, pipeline: &str, execution_id: &str) -> PortResult<Option<ExecutionView>> {
        let answer = self.client.get_pipeline_execution().pipeline_name(pipeline).pipeline_execution_id(execution_id).send().await;
        let out = match answer.map_err(|e| classify("GetPipelineExecution", &e)) {
            Err(error) if error.kind == FailureKind::NotFound => return Ok(None),
            other => other?,
        };
        let Some(execution) = out.pipeline_execution() else { return Ok(None) };
        let package =
            execution.variables().iter().find(|v| v.name() == Some(PACKAGE_VARIABLE)).and_then(|v| v.resolved_value()).and_then(|raw| raw.parse().ok());
        Ok(Some(ExecutionView { status: execution_status(execution.status()), package }))
    }

    async fn action_runs(&self, pipeline: &str, execution_id: &str) -> PortResult<Vec<ActionRun>> {
        let filter = ActionExecutionFilter::builder().pipeline_execution_id(execution_id).build();
        let mut pages = self.client.list_action_executions().pipeline_name(pipeline).filter(filter).into_paginator().send();
        let mut runs = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("ListActionExecutions", &e))?;
            runs.extend(page.action_execution_details().iter().filter_map(action_run));
        }
        Ok(runs)
    }

    async fn stop(&self, pipeline: &str, execution_id: &str, reason: &str) -> PortResult<()> {
        let answer = self
            .client
            .stop_pipeline_execution()
            .pipeline_name(pipeline)
            .pipeline_execution_id(execution_id)
            .abandon(true)
            .reason(clipped(reason, 200))
            .send()
            .await;
        match answer.map_err(|e| classify("StopPipelineExecution", &e)) {
            // Already stopping, or no longer running: either way it deploys nothing more.
            Err(error) if error.kind == FailureKind::Conflict => Ok(()),
            other => other.map(|_| ()),
        }
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
        let result = SdkApprovalResult::builder().status(status).summary(clipped(summary, 512)).build().map_err(|e| build_error("PutApprovalResult", e))?;
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

fn execution_status(status: Option<&PipelineExecutionStatus>) -> ExecutionStatus {
    match status {
        Some(PipelineExecutionStatus::InProgress) => ExecutionStatus::InProgress,
        Some(PipelineExecutionStatus::Stopping) => ExecutionStatus::Stopping,
        Some(PipelineExecutionStatus::Stopped) => ExecutionStatus::Stopped,
        Some(PipelineExecutionStatus::Succeeded) => ExecutionStatus::Succeeded,
        Some(PipelineExecutionStatus::Superseded) => ExecutionStatus::Superseded,
        Some(PipelineExecutionStatus::Failed) => ExecutionStatus::Failed,
        Some(PipelineExecutionStatus::Cancelled) => ExecutionStatus::Cancelled,
        other => ExecutionStatus::Other(other.map_or_else(|| "unknown".to_owned(), |s| s.as_str().to_owned())),
    }
}

/// A run without a stage, an action or a status is not one a gate can rely on: it is left out.
fn action_run(detail: &ActionExecutionDetail) -> Option<ActionRun> {
    let status = match detail.status()? {
        ActionExecutionStatus::InProgress => ActionRunStatus::InProgress,
        ActionExecutionStatus::Succeeded => ActionRunStatus::Succeeded,
        ActionExecutionStatus::Failed => ActionRunStatus::Failed,
        ActionExecutionStatus::Abandoned => ActionRunStatus::Abandoned,
        _ => return None,
    };
    let resolved = detail.input().and_then(|i| i.resolved_configuration());
    Some(ActionRun {
        stage: detail.stage_name()?.to_owned(),
        action: detail.action_name()?.to_owned(),
        status,
        user_parameters: resolved.and_then(|c| c.get("UserParameters")).cloned(),
        updated_by: detail.updated_by().map(str::to_owned),
        summary: detail.output().and_then(|o| o.execution_result()).and_then(|r| r.external_execution_summary()).map(str::to_owned),
        last_update: detail.last_update_time().and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_codepipeline::operation::get_pipeline_state::GetPipelineStateOutput;
    use aws_sdk_codepipeline::operation::put_approval_result::PutApprovalResultOutput;
    use aws_sdk_codepipeline::operation::put_job_failure_result::PutJobFailureResultOutput;
    use aws_sdk_codepipeline::operation::put_job_success_result::PutJobSuccessResultOutput;
    use aws_sdk_codepipeline::types::{ActionExecution, ActionState, StageExecution, StageExecutionStatus, StageState};
    use aws_smithy_mocks::{mock, RuleMode};

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
    async fn a_finished_job_hands_its_output_variables_on_without_a_continuation_token() {
        let rule = mock!(Client::put_job_success_result)
            .match_requests(|r| {
                let variables = r.output_variables().cloned().unwrap_or_default();
                r.job_id() == Some("job-3")
                    && r.continuation_token().is_none()
                    && r.execution_details().and_then(|d| d.summary()) == Some("2/2 test cases passed")
                    && variables.len() == 2
                    && variables.get("ReportKey").map(String::as_str) == Some("reports/churn/1/test-job-3.json")
                    && variables.get("TestSummary").map(String::as_str) == Some("2/2 test cases passed, slowest 12 ms")
            })
            .then_output(|| PutJobSuccessResultOutput::builder().build());
        let plain = mock!(Client::put_job_success_result)
            .match_requests(|r| r.job_id() == Some("job-4") && r.output_variables().is_none())
            .then_output(|| PutJobSuccessResultOutput::builder().build());
        let pipeline = CodePipeline::new(mock_client!(aws_sdk_codepipeline, RuleMode::Sequential, [&rule, &plain]));
        let variables = OutputVariables::from([
            ("ReportKey".to_owned(), "reports/churn/1/test-job-3.json".to_owned()),
            ("TestSummary".to_owned(), "2/2 test cases passed, slowest 12 ms".to_owned()),
        ]);

        pipeline.succeed_with_variables("job-3", "2/2 test cases passed", &variables).await.unwrap();
        pipeline.succeed("job-4", None, "deployed").await.unwrap();

        assert_eq!((rule.num_calls(), plain.num_calls()), (1, 1), "a plain success carries no outputVariables");
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

    const PACKAGE: &str = "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-prediction-111111111111/7";

    #[tokio::test]
    async fn an_execution_starts_for_exactly_the_version_with_the_event_id_as_its_token() {
        use aws_sdk_codepipeline::operation::start_pipeline_execution::StartPipelineExecutionOutput;
        let rule = mock!(Client::start_pipeline_execution)
            .match_requests(|r| {
                let variables: Vec<(&str, &str)> = r.variables().iter().map(|v| (v.name(), v.value())).collect();
                r.name() == Some("model-promotion-deploy")
                    && variables == [(PACKAGE_VARIABLE, PACKAGE)]
                    && r.client_request_token() == Some("c7d9e2f1-4a3b-4c5d-8e6f-7a8b9c0d1e2f")
            })
            .then_output(|| StartPipelineExecutionOutput::builder().pipeline_execution_id("exec-9").build());
        let pipeline = CodePipeline::new(mock_client!(aws_sdk_codepipeline, RuleMode::Sequential, [&rule]));

        let execution = pipeline.start("model-promotion-deploy", &PACKAGE.parse().unwrap(), "c7d9e2f1-4a3b-4c5d-8e6f-7a8b9c0d1e2f").await.unwrap();

        assert_eq!(execution, "exec-9");
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn an_execution_names_its_version_through_the_resolved_variable() {
        use aws_sdk_codepipeline::operation::get_pipeline_execution::GetPipelineExecutionOutput;
        use aws_sdk_codepipeline::types::{PipelineExecution, ResolvedPipelineVariable};
        let asked = |execution: &'static str| {
            move |r: &aws_sdk_codepipeline::operation::get_pipeline_execution::GetPipelineExecutionInput| {
                r.pipeline_name() == Some("model-promotion-deploy") && r.pipeline_execution_id() == Some(execution)
            }
        };
        let with_variable = mock!(Client::get_pipeline_execution).match_requests(asked("exec-1")).then_output(|| {
            let variables =
                [("Other", "x"), (PACKAGE_VARIABLE, PACKAGE)].map(|(name, value)| ResolvedPipelineVariable::builder().name(name).resolved_value(value).build());
            GetPipelineExecutionOutput::builder().pipeline_execution(PipelineExecution::builder().set_variables(Some(variables.to_vec())).build()).build()
        });
        let without = mock!(Client::get_pipeline_execution)
            .match_requests(asked("exec-2"))
            .then_output(|| GetPipelineExecutionOutput::builder().pipeline_execution(PipelineExecution::builder().build()).build());
        let pipeline = CodePipeline::new(mock_client!(aws_sdk_codepipeline, RuleMode::Sequential, [&with_variable, &without]));

        let package = pipeline.execution_package("model-promotion-deploy", "exec-1").await.unwrap();
        let none = pipeline.execution_package("model-promotion-deploy", "exec-2").await.unwrap();

        assert_eq!(package, Some(PACKAGE.parse().unwrap()));
        assert_eq!(none, None, "an execution started by hand names no version");
    }

    #[tokio::test]
    async fn the_approval_result_says_who_answered_and_nothing_while_it_is_not_final() {
        use aws_sdk_codepipeline::operation::list_action_executions::{ListActionExecutionsInput, ListActionExecutionsOutput};
        use aws_sdk_codepipeline::types::{ActionExecutionDetail, ActionExecutionOutput, ActionExecutionResult};
        let of_execution = |r: &ListActionExecutionsInput| {
            r.pipeline_name() == Some("model-promotion-deploy") && r.filter().and_then(|f| f.pipeline_execution_id()) == Some("exec-1")
        };
        let detail = |action: &str, status: ActionExecutionStatus| {
            let result = ActionExecutionResult::builder().external_execution_summary("bias report incomplete").build();
            ActionExecutionDetail::builder()
                .action_name(action)
                .status(status)
                .updated_by("arn:aws:sts::222222222222:assumed-role/Governance/bob")
                .output(ActionExecutionOutput::builder().execution_result(result).build())
                .build()
        };
        let rejected = mock!(Client::list_action_executions).match_requests(of_execution).then_output(move || {
            ListActionExecutionsOutput::builder()
                .action_execution_details(detail("DeployTest", ActionExecutionStatus::Succeeded))
                .action_execution_details(detail("ApproveProd", ActionExecutionStatus::Failed))
                .build()
        });
        let waiting = mock!(Client::list_action_executions).match_requests(of_execution).then_output(move || {
            ListActionExecutionsOutput::builder().action_execution_details(detail("ApproveProd", ActionExecutionStatus::InProgress)).build()
        });
        let pipeline = CodePipeline::new(mock_client!(aws_sdk_codepipeline, RuleMode::Sequential, [&rejected, &waiting]));

        let answered = pipeline.approval_result("model-promotion-deploy", "exec-1", "ApproveProd").await.unwrap();
        let not_yet = pipeline.approval_result("model-promotion-deploy", "exec-1", "ApproveProd").await.unwrap();

        let by = Some("arn:aws:sts::222222222222:assumed-role/Governance/bob".to_owned());
        assert_eq!(answered, Some(ApprovalResult { approved: false, by, comment: Some("bias report incomplete".into()) }));
        assert_eq!(not_yet, None);
    }

    #[tokio::test]
    async fn an_execution_reports_its_status_and_version_and_an_unknown_one_is_none() {
        use aws_sdk_codepipeline::operation::get_pipeline_execution::{GetPipelineExecutionError, GetPipelineExecutionOutput};
        use aws_sdk_codepipeline::types::error::PipelineExecutionNotFoundException;
        use aws_sdk_codepipeline::types::{PipelineExecution, ResolvedPipelineVariable};
        let statuses = [
            (PipelineExecutionStatus::InProgress, ExecutionStatus::InProgress),
            (PipelineExecutionStatus::Stopping, ExecutionStatus::Stopping),
            (PipelineExecutionStatus::Stopped, ExecutionStatus::Stopped),
            (PipelineExecutionStatus::Succeeded, ExecutionStatus::Succeeded),
            (PipelineExecutionStatus::Superseded, ExecutionStatus::Superseded),
            (PipelineExecutionStatus::Failed, ExecutionStatus::Failed),
            (PipelineExecutionStatus::Cancelled, ExecutionStatus::Cancelled),
            (PipelineExecutionStatus::from("Paused"), ExecutionStatus::Other("Paused".into())),
        ];
        let answered: Vec<_> = statuses
            .iter()
            .map(|(status, _)| {
                let status = status.clone();
                mock!(Client::get_pipeline_execution)
                    .match_requests(|r| r.pipeline_name() == Some("model-promotion-deploy") && r.pipeline_execution_id() == Some("exec-1"))
                    .then_output(move || {
                        let variable = ResolvedPipelineVariable::builder().name(PACKAGE_VARIABLE).resolved_value(PACKAGE).build();
                        let execution = PipelineExecution::builder().pipeline_execution_id("exec-1").status(status.clone()).variables(variable).build();
                        GetPipelineExecutionOutput::builder().pipeline_execution(execution).build()
                    })
            })
            .collect();
        let unknown = mock!(Client::get_pipeline_execution).match_requests(|r| r.pipeline_execution_id() == Some("exec-9")).then_error(|| {
            GetPipelineExecutionError::PipelineExecutionNotFoundException(
                PipelineExecutionNotFoundException::builder()
                    .message("Pipeline execution exec-9 not found")
                    .meta(aws_sdk_codepipeline::error::ErrorMetadata::builder().code("PipelineExecutionNotFoundException").build())
                    .build(),
            )
        });
        let rules: Vec<_> = answered.iter().chain([&unknown]).collect();
        let pipeline = CodePipeline::new(mock_client!(aws_sdk_codepipeline, RuleMode::Sequential, rules));

        let mut seen = Vec::new();
        for _ in &statuses {
            seen.push(pipeline.execution("model-promotion-deploy", "exec-1").await.unwrap().unwrap());
        }
        let none = pipeline.execution("model-promotion-deploy", "exec-9").await.unwrap();

        let expected: Vec<_> = statuses.iter().map(|(_, status)| ExecutionView { status: status.clone(), package: Some(PACKAGE.parse().unwrap()) }).collect();
        assert_eq!(seen, expected);
        assert_eq!(none, None, "an execution CodePipeline does not know");
        assert_eq!(unknown.num_calls(), 1);
    }

    #[tokio::test]
    async fn action_runs_read_every_page_of_one_execution_with_the_resolved_user_parameters() {
        use aws_sdk_codepipeline::operation::list_action_executions::{ListActionExecutionsInput, ListActionExecutionsOutput};
        use aws_sdk_codepipeline::types::{ActionExecutionDetail, ActionExecutionInput, ActionExecutionOutput, ActionExecutionResult};
        let resolved = r#"{"stage":"test","model_package_arn":"arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-prediction-111111111111/7","execution_id":"exec-1"}"#;
        let detail = move |stage: &str, status: ActionExecutionStatus, at: i64| {
            let input = ActionExecutionInput::builder()
                .configuration(
                    "UserParameters",
                    r##"{"stage":"test","model_package_arn":"#{variables.ModelPackageArn}","execution_id":"#{codepipeline.PipelineExecutionId}"}"##,
                )
                .resolved_configuration("UserParameters", resolved)
                .build();
            ActionExecutionDetail::builder()
                .pipeline_execution_id("exec-1")
                .stage_name(stage)
                .action_name(stage)
                .status(status)
                .input(input)
                .output(
                    ActionExecutionOutput::builder()
                        .execution_result(ActionExecutionResult::builder().external_execution_summary(format!("{stage} done")).build())
                        .build(),
                )
                .last_update_time(aws_smithy_types::DateTime::from_secs(at))
                .build()
        };
        let asked = |token: Option<&'static str>| {
            move |r: &ListActionExecutionsInput| {
                r.pipeline_name() == Some("model-promotion-deploy")
                    && r.filter().and_then(|f| f.pipeline_execution_id()) == Some("exec-1")
                    && r.next_token() == token
            }
        };
        let first = mock!(Client::list_action_executions).match_requests(asked(None)).then_output(move || {
            ListActionExecutionsOutput::builder()
                .action_execution_details(detail("TestModel", ActionExecutionStatus::InProgress, 1_700_000_060))
                // No status: not a run a gate can rely on.
                .action_execution_details(ActionExecutionDetail::builder().stage_name("Source").action_name("Source").build())
                .next_token("page-2")
                .build()
        });
        let second = mock!(Client::list_action_executions).match_requests(asked(Some("page-2"))).then_output(move || {
            ListActionExecutionsOutput::builder().action_execution_details(detail("DeployTest", ActionExecutionStatus::Succeeded, 1_700_000_000)).build()
        });
        let pipeline = CodePipeline::new(mock_client!(aws_sdk_codepipeline, RuleMode::Sequential, [&first, &second]));

        let runs = pipeline.action_runs("model-promotion-deploy", "exec-1").await.unwrap();

        let run = |stage: &str, status, at| ActionRun {
            stage: stage.into(),
            action: stage.into(),
            status,
            user_parameters: Some(resolved.into()),
            updated_by: None,
            summary: Some(format!("{stage} done")),
            last_update: chrono::DateTime::from_timestamp(at, 0),
        };
        assert_eq!(runs, [run("TestModel", ActionRunStatus::InProgress, 1_700_000_060), run("DeployTest", ActionRunStatus::Succeeded, 1_700_000_000)]);
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn a_stop_abandons_with_a_clipped_reason_and_an_execution_no_longer_running_counts_as_stopped() {
        use aws_sdk_codepipeline::operation::stop_pipeline_execution::{StopPipelineExecutionError, StopPipelineExecutionOutput};
        use aws_sdk_codepipeline::types::error::{DuplicatedStopRequestException, PipelineExecutionNotStoppableException};
        let reason = format!("revoked in dev: {}", "r".repeat(300));
        let expected = reason[..200].to_owned();
        let stopped = mock!(Client::stop_pipeline_execution)
            .match_requests(move |r| {
                r.pipeline_name() == Some("model-promotion-deploy")
                    && r.pipeline_execution_id() == Some("exec-1")
                    && r.abandon() == Some(true)
                    && r.reason() == Some(expected.as_str())
            })
            .then_output(|| StopPipelineExecutionOutput::builder().pipeline_execution_id("exec-1").build());
        let meta = |code: &str| aws_sdk_codepipeline::error::ErrorMetadata::builder().code(code).build();
        let not_stoppable = mock!(Client::stop_pipeline_execution).then_error(move || {
            StopPipelineExecutionError::PipelineExecutionNotStoppableException(
                PipelineExecutionNotStoppableException::builder()
                    .message("Unable to stop the pipeline execution: it is no longer in progress")
                    .meta(meta("PipelineExecutionNotStoppableException"))
                    .build(),
            )
        });
        let duplicated = mock!(Client::stop_pipeline_execution).then_error(move || {
            StopPipelineExecutionError::DuplicatedStopRequestException(
                DuplicatedStopRequestException::builder().message("already stopping").meta(meta("DuplicatedStopRequestException")).build(),
            )
        });
        let pipeline = CodePipeline::new(mock_client!(aws_sdk_codepipeline, RuleMode::Sequential, [&stopped, &not_stoppable, &duplicated]));

        pipeline.stop("model-promotion-deploy", "exec-1", &reason).await.unwrap();
        pipeline.stop("model-promotion-deploy", "exec-1", &reason).await.unwrap();
        pipeline.stop("model-promotion-deploy", "exec-1", &reason).await.unwrap();

        assert_eq!([stopped.num_calls(), not_stoppable.num_calls(), duplicated.num_calls()], [1, 1, 1]);
    }

    #[test]
    fn request_tokens_keep_only_what_codepipeline_admits() {
        assert_eq!(request_token("844e2571-85d4_695f:b930"), "844e2571-85d4695fb930");
    }
}
