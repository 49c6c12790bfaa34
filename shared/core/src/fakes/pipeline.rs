//! CodePipeline: answers to jobs, executions and the prod approval.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::deploy::OutputVariables;
use crate::domain::ids::ModelPackageArn;
use crate::ports::{
    ActionRun, ActionRunStatus, ApprovalResult, ExecutionStatus, ExecutionView, FailureKind, PendingApproval, PipelineJobs, PipelineRuns, PortError, PortResult,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobAnswer {
    pub job_id: String,
    pub succeeded: bool,
    pub continuation: Option<String>,
    pub message: String,
    /// The output variables a final success handed on.
    pub variables: OutputVariables,
}

#[derive(Default)]
pub struct FakeJobs {
    pub answers: Mutex<Vec<JobAnswer>>,
}

impl FakeJobs {
    /// As CodePipeline: a job takes one answer, and a second one is refused.
    fn settle(&self, answer: JobAnswer) -> PortResult<()> {
        let mut answers = self.answers.lock().unwrap();
        if answers.iter().any(|earlier| earlier.job_id == answer.job_id) {
            return Err(PortError::new("PutJobResult", FailureKind::Conflict, format!("InvalidJobStateException: job {} is already answered", answer.job_id)));
        }
        answers.push(answer);
        Ok(())
    }

    /// The answer a job got, if any.
    pub fn answer(&self, job_id: &str) -> Option<JobAnswer> {
        self.answers.lock().unwrap().iter().find(|a| a.job_id == job_id).cloned()
    }
}

#[async_trait]
impl PipelineJobs for FakeJobs {
    async fn succeed(&self, job_id: &str, continuation: Option<&str>, summary: &str) -> PortResult<()> {
        let continuation = continuation.map(str::to_owned);
        self.settle(JobAnswer { job_id: job_id.into(), succeeded: true, continuation, message: summary.into(), variables: OutputVariables::new() })
    }

    async fn succeed_with_variables(&self, job_id: &str, summary: &str, variables: &OutputVariables) -> PortResult<()> {
        self.settle(JobAnswer { job_id: job_id.into(), succeeded: true, continuation: None, message: summary.into(), variables: variables.clone() })
    }

    async fn fail(&self, job_id: &str, message: &str) -> PortResult<()> {
        self.settle(JobAnswer { job_id: job_id.into(), succeeded: false, continuation: None, message: message.into(), variables: OutputVariables::new() })
    }
}

#[derive(Default)]
pub struct FakeRuns {
    /// Executions by id: the version each runs for and the token that started it.
    pub executions: Mutex<BTreeMap<String, (ModelPackageArn, String)>>,
    pub pending: Mutex<Option<PendingApproval>>,
    pub answers: Mutex<Vec<(String, bool, String)>>,
    pub approval_results: Mutex<HashMap<String, ApprovalResult>>,
    /// What CodePipeline reports of each execution's actions, by execution, newest first.
    pub action_runs: Mutex<HashMap<String, Vec<ActionRun>>>,
    /// Executions ended by hand or by the service, with the reason.
    pub stopped: Mutex<BTreeMap<String, String>>,
    /// Executions that ended otherwise (Succeeded, Failed…); the others are in progress.
    pub ended: Mutex<HashMap<String, ExecutionStatus>>,
}

impl FakeRuns {
    /// Records a run of `action` in `stage` of an execution, as CodePipeline would report it.
    pub fn report(&self, execution_id: &str, stage: &str, action: &str, status: ActionRunStatus, user_parameters: Option<&str>) {
        let run = ActionRun {
            stage: stage.to_owned(),
            action: action.to_owned(),
            status,
            user_parameters: user_parameters.map(str::to_owned),
            updated_by: None,
            summary: None,
            last_update: Some(chrono::Utc::now()),
        };
        self.action_runs.lock().unwrap().entry(execution_id.to_owned()).or_default().insert(0, run);
    }
}

#[async_trait]
impl PipelineRuns for FakeRuns {
    async fn start(&self, _pipeline: &str, package: &ModelPackageArn, token: &str) -> PortResult<String> {
        let mut executions = self.executions.lock().unwrap();
        if let Some((id, _)) = executions.iter().find(|(_, (_, t))| t == token) {
            return Ok(id.clone());
        }
        let id = format!("exec-{}", executions.len() + 1);
        executions.insert(id.clone(), (package.clone(), token.to_owned()));
        Ok(id)
    }

    async fn execution(&self, _pipeline: &str, execution_id: &str) -> PortResult<Option<ExecutionView>> {
        let package = self.executions.lock().unwrap().get(execution_id).map(|(package, _)| package.clone());
        let ended = self.ended.lock().unwrap().get(execution_id).cloned();
        let stopped = self.stopped.lock().unwrap().contains_key(execution_id).then_some(ExecutionStatus::Stopped);
        let status = ended.or(stopped).unwrap_or(ExecutionStatus::InProgress);
        Ok(package.map(|package| ExecutionView { status, package: Some(package) }))
    }

    async fn action_runs(&self, _pipeline: &str, execution_id: &str) -> PortResult<Vec<ActionRun>> {
        Ok(self.action_runs.lock().unwrap().get(execution_id).cloned().unwrap_or_default())
    }

    async fn stop(&self, _pipeline: &str, execution_id: &str, reason: &str) -> PortResult<()> {
        self.stopped.lock().unwrap().insert(execution_id.to_owned(), reason.to_owned());
        Ok(())
    }

    async fn pending_approval(&self, _pipeline: &str, _stage: &str, _action: &str) -> PortResult<Option<PendingApproval>> {
        Ok(self.pending.lock().unwrap().clone())
    }

    async fn answer_approval(&self, _pipeline: &str, _stage: &str, _action: &str, token: &str, approve: bool, summary: &str) -> PortResult<()> {
        self.answers.lock().unwrap().push((token.to_owned(), approve, summary.to_owned()));
        // As CodePipeline: a rejection fails the execution at the approval.
        let answered = self.pending.lock().unwrap().take().and_then(|pending| pending.execution_id);
        if let Some(execution_id) = answered.filter(|_| !approve) {
            self.ended.lock().unwrap().insert(execution_id, ExecutionStatus::Failed);
        }
        Ok(())
    }

    async fn approval_result(&self, _pipeline: &str, execution_id: &str, _action: &str) -> PortResult<Option<ApprovalResult>> {
        Ok(self.approval_results.lock().unwrap().get(execution_id).cloned())
    }
}
