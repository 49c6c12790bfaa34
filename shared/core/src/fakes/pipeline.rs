//! CodePipeline: answers to jobs, executions and the prod approval.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::deploy::OutputVariables;
use crate::domain::ids::ModelPackageArn;
use crate::domain::ids::Stage;
use crate::domain::pipeline::{PipelineStage, APPROVAL_ACTION};
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
    /// What CodePipeline reports of each execution's actions, by execution, newest first.
    pub action_runs: Mutex<HashMap<String, Vec<ActionRun>>>,
    /// Executions ended by hand or by the service, with the reason.
    pub stopped: Mutex<BTreeMap<String, String>>,
    /// Executions that ended otherwise (Succeeded, Failed…); the others are in progress.
    pub ended: Mutex<HashMap<String, ExecutionStatus>>,
}

/// Who answers the fake pipeline's prod approvals: a governance officer, no one who approved earlier.
pub const GOVERNANCE_OFFICER: &str = "arn:aws:sts::222222222222:assumed-role/model-promotion-governance/grace";

/// The `UserParameters` CodePipeline resolves for a deploy-model or test-model job of `execution_id`.
pub fn job_parameters(stage: Stage, package: &ModelPackageArn, execution_id: &str) -> String {
    serde_json::json!({ "stage": stage, "model_package_arn": package, "execution_id": execution_id }).to_string()
}

impl FakeRuns {
    /// CodePipeline runs `execution_id` for `package` and has reached `stage`: the stages before it
    /// passed, and its action runs now with the parameters CodePipeline resolves for its job.
    pub fn run_at(&self, execution_id: &str, package: &ModelPackageArn, stage: PipelineStage) {
        self.executions.lock().unwrap().insert(execution_id.to_owned(), (package.clone(), format!("token-{execution_id}")));
        self.action_runs.lock().unwrap().remove(execution_id);
        for earlier in PipelineStage::ALL.into_iter().take_while(|s| *s != stage) {
            self.report(execution_id, earlier.as_str(), earlier.as_str(), ActionRunStatus::Succeeded, None);
        }
        if let Some(approval) = self.action_runs.lock().unwrap().get_mut(execution_id).and_then(|runs| runs.iter_mut().find(|r| r.stage == APPROVAL_ACTION)) {
            approval.updated_by = Some(GOVERNANCE_OFFICER.to_owned());
        }
        let deploys_to = if stage == PipelineStage::DeployProd { Stage::Prod } else { Stage::Test };
        let parameters = (stage != PipelineStage::ApproveProd).then(|| job_parameters(deploys_to, package, execution_id));
        self.report(execution_id, stage.as_str(), stage.as_str(), ActionRunStatus::InProgress, parameters.as_deref());
    }

    /// A person answers the prod approval of an execution: its run ends, as ListActionExecutions
    /// then reports it.
    pub fn decide_approval(&self, execution_id: &str, approved: bool, by: Option<&str>, comment: Option<&str>) {
        let mut runs = self.action_runs.lock().unwrap();
        let runs = runs.entry(execution_id.to_owned()).or_default();
        let status = if approved { ActionRunStatus::Succeeded } else { ActionRunStatus::Failed };
        let answered = ActionRun {
            stage: APPROVAL_ACTION.to_owned(),
            action: APPROVAL_ACTION.to_owned(),
            status,
            user_parameters: None,
            updated_by: by.map(str::to_owned),
            summary: comment.map(str::to_owned),
            last_update: Some(chrono::Utc::now()),
        };
        match runs.iter_mut().find(|r| r.stage == APPROVAL_ACTION && r.status == ActionRunStatus::InProgress) {
            Some(waiting) => *waiting = answered,
            None => runs.insert(0, answered),
        }
    }

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

    async fn approval_result(&self, _pipeline: &str, execution_id: &str, action: &str) -> PortResult<Option<ApprovalResult>> {
        let runs = self.action_runs.lock().unwrap();
        let answered = runs.get(execution_id).and_then(|runs| runs.iter().find(|r| r.action == action)).and_then(|run| match run.status {
            ActionRunStatus::Succeeded | ActionRunStatus::Failed => {
                Some(ApprovalResult { approved: run.status == ActionRunStatus::Succeeded, by: run.updated_by.clone(), comment: run.summary.clone() })
            }
            _ => None,
        });
        Ok(answered)
    }
}
