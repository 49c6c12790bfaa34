//! The local CodePipeline's state: the pipeline of `infra/pipeline.json`, its executions, their
//! action runs and the jobs of the Lambda actions, kept in a JSON file so that successive `promote`
//! processes (run, approve, reject) share it. The server answers CodePipeline's API from it (what
//! the functions and the CLI ask through the real adapter); the driver plays CodePipeline's
//! engine on it (starts actions, hands out jobs, moves executions on). Each call reads the file,
//! changes it and writes it back whole (through a rename) under one lock: calls of one process are
//! serialised; two processes changing one execution at the same moment are not (the CLI runs one
//! command at a time).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{PipelineDefinition, PipelineStage};

/// What CodePipeline refuses, named as its API names the exception (the `__type` of the answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("pipeline {0} not found")]
    PipelineNotFound(String),
    #[error("pipeline execution {0} not found")]
    PipelineExecutionNotFound(String),
    #[error("stage {0} not found")]
    StageNotFound(String),
    #[error("action {0} not found")]
    ActionNotFound(String),
    #[error("job {0} not found")]
    JobNotFound(String),
    #[error("job {job} is {state}: it takes no further answer")]
    InvalidJobState { job: String, state: &'static str },
    #[error("the approval token {0} is not the token of an open approval of this action")]
    InvalidApprovalToken(String),
    #[error("the approval was already {0}")]
    ApprovalAlreadyCompleted(&'static str),
    #[error("unable to stop pipeline execution {id}: it is {status}")]
    PipelineExecutionNotStoppable { id: String, status: &'static str },
    #[error("pipeline execution {0} is stopping already")]
    DuplicatedStopRequest(String),
    #[error("invalid nextToken {0}")]
    InvalidNextToken(String),
    #[error("{0}")]
    Validation(String),
    /// Not CodePipeline's: the world's file could not be read or written.
    #[error("the local pipeline state {path}: {error}")]
    Storage { path: String, error: String },
}

impl Refusal {
    /// The exception's name, as the SDK reads it from `__type`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::PipelineNotFound(_) => "PipelineNotFoundException",
            Self::PipelineExecutionNotFound(_) => "PipelineExecutionNotFoundException",
            Self::StageNotFound(_) => "StageNotFoundException",
            Self::ActionNotFound(_) => "ActionNotFoundException",
            Self::JobNotFound(_) => "JobNotFoundException",
            Self::InvalidJobState { .. } => "InvalidJobStateException",
            Self::InvalidApprovalToken(_) => "InvalidApprovalTokenException",
            Self::ApprovalAlreadyCompleted(_) => "ApprovalAlreadyCompletedException",
            Self::PipelineExecutionNotStoppable { .. } => "PipelineExecutionNotStoppableException",
            Self::DuplicatedStopRequest(_) => "DuplicatedStopRequestException",
            Self::InvalidNextToken(_) => "InvalidNextTokenException",
            Self::Validation(_) => "ValidationException",
            Self::Storage { .. } => "InternalFailure",
        }
    }

    /// The world's own failure (HTTP 500), not a refusal of the caller's request (HTTP 400).
    pub fn is_internal(&self) -> bool {
        matches!(self, Self::Storage { .. })
    }
}

pub type Answer<T> = Result<T, Refusal>;

/// An execution's status, as CodePipeline spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecutionStatus {
    InProgress,
    Stopping,
    Stopped,
    Succeeded,
    Failed,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "InProgress",
            Self::Stopping => "Stopping",
            Self::Stopped => "Stopped",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }
}

/// An action run's status, as `ListActionExecutions` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionStatus {
    InProgress,
    Succeeded,
    Failed,
    Abandoned,
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "InProgress",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Abandoned => "Abandoned",
        }
    }
}

/// A job's status (CodePipeline's `JobStatus`, the ones a Lambda action's job goes through).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    InProgress,
    Succeeded,
    Failed,
    TimedOut,
}

impl JobStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "InProgress",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::TimedOut => "TimedOut",
        }
    }
}

/// The two kinds of action the pipeline has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionKind {
    Lambda,
    ManualApproval,
}

impl ActionKind {
    /// `actionTypeId.category`, and the `type.category` of the state-change events.
    pub fn category(self) -> &'static str {
        match self {
            Self::Lambda => "Invoke",
            Self::ManualApproval => "Approval",
        }
    }

    pub fn provider(self) -> &'static str {
        match self {
            Self::Lambda => "Lambda",
            Self::ManualApproval => "Manual",
        }
    }
}

/// One run of one action in one execution (an `ActionExecutionDetail`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRun {
    pub id: String,
    /// Orders runs across executions, newest last.
    pub seq: u64,
    pub stage: String,
    pub action: String,
    pub kind: ActionKind,
    pub namespace: Option<String>,
    pub status: ActionStatus,
    pub started: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    /// As the pipeline declares it, variables unresolved.
    pub configuration: BTreeMap<String, String>,
    /// As this run got it, variables resolved.
    pub resolved: BTreeMap<String, String>,
    /// A manual approval's token.
    pub token: Option<String>,
    /// The job's summary or failure message, or the approval's comment.
    pub summary: Option<String>,
    /// Who answered an approval.
    pub updated_by: Option<String>,
    pub output_variables: BTreeMap<String, String>,
    /// What the next job of the run carries: the latest job's continuation token.
    pub continuation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    pub pipeline: String,
    pub request_token: Option<String>,
    /// The pipeline-level variables it was started with.
    pub variables: BTreeMap<String, String>,
    pub status: ExecutionStatus,
    pub summary: Option<String>,
    pub started: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    /// The engine's place: the index of the stage it runs or runs next.
    pub next_stage: usize,
    /// Its action runs, oldest first.
    pub runs: Vec<ActionRun>,
}

impl Execution {
    /// The output variables of its finished actions, as `Namespace.Name`.
    pub fn outputs(&self) -> BTreeMap<String, String> {
        let finished = self.runs.iter().filter(|r| r.status == ActionStatus::Succeeded);
        finished
            .filter_map(|r| r.namespace.as_ref().map(|ns| r.output_variables.iter().map(move |(name, value)| (format!("{ns}.{name}"), value.clone()))))
            .flatten()
            .collect()
    }

    fn run_mut(&mut self, run_id: &str) -> Option<&mut ActionRun> {
        self.runs.iter_mut().find(|r| r.id == run_id)
    }

    /// `text` with every `#{namespace.name}` replaced as CodePipeline resolves it for this
    /// execution; an error names a reference it cannot resolve.
    fn resolve(&self, execution_id: &str, text: &str) -> Result<String, String> {
        let outputs = self.outputs();
        let value = |name: &str| match name.split_once('.') {
            Some(("codepipeline", "PipelineExecutionId")) => Some(execution_id.to_owned()),
            Some(("variables", variable)) => self.variables.get(variable).cloned(),
            _ => outputs.get(name).cloned(),
        };
        let mut resolved = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("#{") {
            resolved.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| format!("an unterminated variable reference in {text}"))?;
            let name = &after[..end];
            resolved.push_str(&value(name).ok_or_else(|| format!("#{{{name}}} is no variable of execution {execution_id}"))?);
            rest = &after[end + 1..];
        }
        resolved.push_str(rest);
        Ok(resolved)
    }
}

/// A job's answer, as the job worker (the function) gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum JobAnswer {
    Succeeded { continuation: Option<String>, summary: Option<String>, variables: BTreeMap<String, String> },
    Failed { kind: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub execution_id: String,
    pub run_id: String,
    pub status: JobStatus,
    /// The continuation token it was handed.
    pub continuation: Option<String>,
    pub answer: Option<JobAnswer>,
}

/// A job the driver hands to a function: what its `CodePipeline.job` event carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedJob {
    pub id: String,
    pub configuration: BTreeMap<String, String>,
    pub continuation: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    executions: BTreeMap<String, Execution>,
    jobs: BTreeMap<String, Job>,
    /// The last action run's `seq`.
    runs: u64,
}

impl State {
    fn execution(&self, id: &str) -> Answer<&Execution> {
        self.executions.get(id).ok_or_else(|| Refusal::PipelineExecutionNotFound(id.to_owned()))
    }

    fn execution_mut(&mut self, id: &str) -> Answer<&mut Execution> {
        self.executions.get_mut(id).ok_or_else(|| Refusal::PipelineExecutionNotFound(id.to_owned()))
    }
}

/// The latest run of a stage's action, in whichever execution ran it last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageState {
    pub stage: String,
    pub action: String,
    pub latest: Option<(String, ActionRun)>,
}

/// A person's answer to a manual approval (`PutApprovalResult`).
#[derive(Debug, Clone, Copy)]
pub struct ApprovalAnswer<'a> {
    pub stage: &'a str,
    pub action: &'a str,
    pub token: &'a str,
    pub approved: bool,
    pub summary: &'a str,
    /// Who answered.
    pub by: &'a str,
}

/// The pipeline's world in its file.
pub struct PipelineWorld {
    path: PathBuf,
    definition: PipelineDefinition,
    lock: Mutex<()>,
    /// The IAM principal of the process that calls this world (STS `GetCallerIdentity`): who
    /// CodePipeline would name as the approval's `updatedBy`.
    caller: Mutex<Option<String>>,
}

impl PipelineWorld {
    pub fn open(path: impl Into<PathBuf>, definition: PipelineDefinition) -> Self {
        Self { path: path.into(), definition, lock: Mutex::new(()), caller: Mutex::new(None) }
    }

    /// The calls come from `arn`'s credentials: the world names it as CodePipeline names its callers.
    pub fn called_by(&self, arn: &str) {
        *self.caller.lock().expect("caller lock") = Some(arn.to_owned());
    }

    /// Who answers an approval: the caller STS named, or else the person at the terminal (which
    /// resolves to no IAM principal, so the four-eyes gate takes it for no one).
    pub fn caller(&self) -> String {
        let named = self.caller.lock().expect("caller lock").clone();
        named.unwrap_or_else(|| std::env::var("USER").unwrap_or_else(|_| "local operator".to_owned()))
    }

    pub fn definition(&self) -> &PipelineDefinition {
        &self.definition
    }

    // ---------------------------------------------------------------- the API's side

    /// `StartPipelineExecution`: a new execution, or the one `token` started already.
    pub fn start(&self, pipeline: &str, variables: BTreeMap<String, String>, token: Option<String>) -> Answer<String> {
        self.known(pipeline)?;
        if let Some(unknown) = variables.keys().find(|name| **name != self.definition.variable) {
            return Err(Refusal::Validation(format!("the pipeline declares no variable {unknown}")));
        }
        self.change(|state| {
            let earlier = token.as_ref().and_then(|token| state.executions.iter().find(|(_, e)| e.request_token.as_ref() == Some(token)));
            if let Some((id, _)) = earlier {
                return Ok(id.clone());
            }
            let id = uuid::Uuid::new_v4().to_string();
            let now = Utc::now();
            let execution = Execution {
                pipeline: pipeline.to_owned(),
                request_token: token,
                variables,
                status: ExecutionStatus::InProgress,
                summary: None,
                started: now,
                updated: now,
                next_stage: 0,
                runs: Vec::new(),
            };
            state.executions.insert(id.clone(), execution);
            Ok(id)
        })
    }

    /// `GetPipelineExecution`.
    pub fn execution(&self, pipeline: &str, id: &str) -> Answer<Execution> {
        self.known(pipeline)?;
        self.read(|state| state.execution(id).cloned())
    }

    /// `GetPipelineState`: each stage with its action's latest run.
    pub fn stage_states(&self, pipeline: &str) -> Answer<Vec<StageState>> {
        self.known(pipeline)?;
        let state = self.read(|state| Ok(state.executions.clone()))?;
        Ok(self
            .definition
            .stages
            .iter()
            .map(|stage| {
                let latest = state
                    .iter()
                    .flat_map(|(id, e)| e.runs.iter().filter(|r| r.stage == stage.name).map(move |r| (id.clone(), r.clone())))
                    .max_by_key(|(_, run)| run.seq);
                StageState { stage: stage.name.clone(), action: stage.name.clone(), latest }
            })
            .collect())
    }

    /// `ListActionExecutions`: the action runs of the pipeline, or of one execution, newest first.
    pub fn action_runs(&self, pipeline: &str, execution: Option<&str>) -> Answer<Vec<(String, ActionRun)>> {
        self.known(pipeline)?;
        let executions = self.read(|state| Ok(state.executions.clone()))?;
        if let Some(id) = execution {
            if !executions.contains_key(id) {
                return Err(Refusal::PipelineExecutionNotFound(id.to_owned()));
            }
        }
        let mut runs: Vec<(String, ActionRun)> = executions
            .into_iter()
            .filter(|(id, _)| execution.is_none_or(|wanted| wanted == id))
            .flat_map(|(id, e)| e.runs.into_iter().map(move |r| (id.clone(), r)))
            .collect();
        runs.sort_by_key(|(_, run)| std::cmp::Reverse(run.seq));
        Ok(runs)
    }

    /// `PutApprovalResult`: answers the open approval the token names; returns when.
    pub fn answer_approval(&self, pipeline: &str, answer: &ApprovalAnswer<'_>) -> Answer<DateTime<Utc>> {
        let ApprovalAnswer { stage, action, token, approved, summary, by } = *answer;
        self.known(pipeline)?;
        let declared = self.definition.stages.iter().find(|s| s.name == stage).ok_or_else(|| Refusal::StageNotFound(stage.to_owned()))?;
        if declared.name != action || declared.kind() != ActionKind::ManualApproval {
            return Err(Refusal::ActionNotFound(action.to_owned()));
        }
        self.change(|state| {
            let run = state
                .executions
                .values_mut()
                .flat_map(|e| e.runs.iter_mut())
                .find(|r| r.stage == stage && r.action == action && r.token.as_deref() == Some(token))
                .ok_or_else(|| Refusal::InvalidApprovalToken(token.to_owned()))?;
            match run.status {
                ActionStatus::InProgress => {}
                ActionStatus::Succeeded => return Err(Refusal::ApprovalAlreadyCompleted("approved")),
                ActionStatus::Failed => return Err(Refusal::ApprovalAlreadyCompleted("rejected")),
                // Its execution was stopped: the token opens nothing any more.
                ActionStatus::Abandoned => return Err(Refusal::InvalidApprovalToken(token.to_owned())),
            }
            let now = Utc::now();
            run.status = if approved { ActionStatus::Succeeded } else { ActionStatus::Failed };
            run.summary = Some(summary.to_owned());
            run.updated_by = Some(by.to_owned());
            run.updated = now;
            Ok(now)
        })
    }

    /// `PutJobSuccessResult` and `PutJobFailureResult`: a job takes one answer, while its action runs.
    pub fn answer_job(&self, job_id: &str, answer: JobAnswer) -> Answer<()> {
        if uuid::Uuid::parse_str(job_id).map(|id| id.hyphenated().to_string()).as_deref() != Ok(job_id) {
            return Err(Refusal::Validation(format!(
                "1 validation error detected: Value '{job_id}' at 'jobId' failed to satisfy constraint: Member must satisfy regular expression pattern: [0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}"
            )));
        }
        if let JobAnswer::Succeeded { continuation: Some(token), variables, .. } = &answer {
            if !variables.is_empty() {
                return Err(Refusal::Validation("outputVariables can be included only when there is no continuation token on the request".into()));
            }
            if token.is_empty() || token.len() > 2048 {
                return Err(Refusal::Validation("continuationToken must be 1 to 2048 characters".into()));
            }
        }
        self.change(|state| {
            let job = state.jobs.get(job_id).cloned().ok_or_else(|| Refusal::JobNotFound(job_id.to_owned()))?;
            if job.status != JobStatus::InProgress {
                return Err(Refusal::InvalidJobState { job: job_id.to_owned(), state: job.status.as_str() });
            }
            let run = state.execution_mut(&job.execution_id)?.run_mut(&job.run_id).ok_or_else(|| Refusal::JobNotFound(job_id.to_owned()))?;
            if run.status != ActionStatus::InProgress {
                return Err(Refusal::InvalidJobState { job: job_id.to_owned(), state: run.status.as_str() });
            }
            let status = settle(run, &answer);
            let job = state.jobs.get_mut(job_id).expect("read above");
            job.status = status;
            job.answer = Some(answer);
            Ok(())
        })
    }

    /// `StopPipelineExecution`: abandoning stops it at once; otherwise its running action finishes first.
    pub fn stop(&self, pipeline: &str, id: &str, abandon: bool, reason: Option<&str>) -> Answer<()> {
        self.known(pipeline)?;
        self.change(|state| {
            let execution = state.execution_mut(id)?;
            match execution.status {
                ExecutionStatus::InProgress => {}
                ExecutionStatus::Stopping if abandon => {}
                ExecutionStatus::Stopping => return Err(Refusal::DuplicatedStopRequest(id.to_owned())),
                done => return Err(Refusal::PipelineExecutionNotStoppable { id: id.to_owned(), status: done.as_str() }),
            }
            let now = Utc::now();
            execution.summary = reason.map(str::to_owned).or(execution.summary.take());
            execution.updated = now;
            execution.status = ExecutionStatus::Stopping;
            if abandon {
                for run in execution.runs.iter_mut().filter(|r| r.status == ActionStatus::InProgress) {
                    run.status = ActionStatus::Abandoned;
                    run.updated = now;
                }
                execution.status = ExecutionStatus::Stopped;
            }
            Ok(())
        })
    }

    // ---------------------------------------------------------------- the engine's side

    /// The execution, as the engine reads it.
    pub fn execution_by_id(&self, id: &str) -> Answer<Execution> {
        self.read(|state| state.execution(id).cloned())
    }

    /// Starts the action of `stage` in a running execution, its configuration resolved; `None`
    /// when the execution no longer runs. A configuration that does not resolve fails the run.
    pub fn begin_action(&self, execution_id: &str, stage: &PipelineStage) -> Answer<Option<String>> {
        let configuration = stage.configuration(&self.definition.variable);
        self.change(|state| {
            state.runs += 1;
            let seq = state.runs;
            let execution = state.execution_mut(execution_id)?;
            if execution.status != ExecutionStatus::InProgress {
                return Ok(None);
            }
            let resolved: Result<BTreeMap<String, String>, String> =
                configuration.iter().map(|(key, raw)| execution.resolve(execution_id, raw).map(|value| (key.clone(), value))).collect();
            let now = Utc::now();
            let kind = stage.kind();
            let (status, resolved, summary) = match resolved {
                Ok(resolved) => (ActionStatus::InProgress, resolved, None),
                Err(unresolved) => (ActionStatus::Failed, BTreeMap::new(), Some(unresolved)),
            };
            let id = uuid::Uuid::new_v4().to_string();
            execution.runs.push(ActionRun {
                id: id.clone(),
                seq,
                stage: stage.name.clone(),
                action: stage.name.clone(),
                kind,
                namespace: stage.namespace.clone(),
                status,
                started: now,
                updated: now,
                configuration,
                resolved,
                token: (kind == ActionKind::ManualApproval).then(|| uuid::Uuid::new_v4().to_string()),
                summary,
                updated_by: None,
                output_variables: BTreeMap::new(),
                continuation: None,
            });
            execution.updated = now;
            Ok(Some(id))
        })
    }

    pub fn action_run(&self, execution_id: &str, run_id: &str) -> Answer<ActionRun> {
        self.read(|state| {
            state.execution(execution_id)?.runs.iter().find(|r| r.id == run_id).cloned().ok_or_else(|| Refusal::ActionNotFound(run_id.to_owned()))
        })
    }

    /// A new job of a running action, carrying the latest job's continuation token; `None` once
    /// the run is over (abandoned with its execution).
    pub fn open_job(&self, execution_id: &str, run_id: &str) -> Answer<Option<OpenedJob>> {
        self.change(|state| {
            let execution = state.execution_mut(execution_id)?;
            let run = execution.run_mut(run_id).ok_or_else(|| Refusal::ActionNotFound(run_id.to_owned()))?;
            if run.status != ActionStatus::InProgress {
                return Ok(None);
            }
            let id = uuid::Uuid::new_v4().to_string();
            let opened = OpenedJob { id: id.clone(), configuration: run.resolved.clone(), continuation: run.continuation.take() };
            let job = Job {
                execution_id: execution_id.to_owned(),
                run_id: run_id.to_owned(),
                status: JobStatus::InProgress,
                continuation: opened.continuation.clone(),
                answer: None,
            };
            state.jobs.insert(id, job);
            Ok(Some(opened))
        })
    }

    pub fn job(&self, id: &str) -> Answer<Job> {
        self.read(|state| state.jobs.get(id).cloned().ok_or_else(|| Refusal::JobNotFound(id.to_owned())))
    }

    /// A job nobody answered times out, and fails its action with `why`.
    pub fn time_out(&self, job_id: &str, why: &str) -> Answer<()> {
        self.change(|state| {
            let job = state.jobs.get_mut(job_id).ok_or_else(|| Refusal::JobNotFound(job_id.to_owned()))?;
            if job.status != JobStatus::InProgress {
                return Ok(());
            }
            job.status = JobStatus::TimedOut;
            let (execution_id, run_id) = (job.execution_id.clone(), job.run_id.clone());
            if let Some(run) = state.execution_mut(&execution_id)?.run_mut(&run_id).filter(|r| r.status == ActionStatus::InProgress) {
                run.status = ActionStatus::Failed;
                run.summary = Some(why.to_owned());
                run.updated = Utc::now();
            }
            Ok(())
        })
    }

    /// The execution moves on to its next stage.
    pub fn advance(&self, execution_id: &str) -> Answer<()> {
        self.change(|state| {
            state.execution_mut(execution_id)?.next_stage += 1;
            Ok(())
        })
    }

    /// The execution ends: it succeeded, failed, or finished stopping.
    pub fn end(&self, execution_id: &str, status: ExecutionStatus) -> Answer<()> {
        self.change(|state| {
            let execution = state.execution_mut(execution_id)?;
            execution.status = status;
            execution.updated = Utc::now();
            Ok(())
        })
    }

    // ---------------------------------------------------------------- the file

    fn known(&self, pipeline: &str) -> Answer<()> {
        if pipeline == self.definition.name {
            Ok(())
        } else {
            Err(Refusal::PipelineNotFound(pipeline.to_owned()))
        }
    }

    fn storage(&self, error: impl std::fmt::Display) -> Refusal {
        Refusal::Storage { path: self.path.display().to_string(), error: error.to_string() }
    }

    fn load(&self) -> Answer<State> {
        match std::fs::read(&self.path) {
            Ok(raw) => serde_json::from_slice(&raw).map_err(|e| self.storage(format!("{e} (a state of another version: remove the file)"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(self.storage(e)),
        }
    }

    fn read<T>(&self, query: impl FnOnce(&State) -> Answer<T>) -> Answer<T> {
        let _held = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        query(&self.load()?)
    }

    /// Applies `change` and writes the state back, unless it refused.
    fn change<T>(&self, change: impl FnOnce(&mut State) -> Answer<T>) -> Answer<T> {
        let _held = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut state = self.load()?;
        let result = change(&mut state)?;
        let raw = serde_json::to_vec_pretty(&state).map_err(|e| self.storage(e))?;
        let written = self.path.with_extension("json.tmp");
        std::fs::write(&written, raw).and_then(|()| std::fs::rename(&written, &self.path)).map_err(|e| self.storage(e))?;
        Ok(result)
    }
}

/// What a job's answer does to its action run; returns the job's new status.
fn settle(run: &mut ActionRun, answer: &JobAnswer) -> JobStatus {
    run.updated = Utc::now();
    match answer {
        JobAnswer::Succeeded { continuation: Some(token), summary, .. } => {
            run.continuation = Some(token.clone());
            run.summary = summary.clone();
        }
        JobAnswer::Succeeded { continuation: None, summary, variables } => {
            run.status = ActionStatus::Succeeded;
            run.summary = summary.clone();
            run.output_variables = variables.clone();
        }
        JobAnswer::Failed { message, .. } => {
            run.status = ActionStatus::Failed;
            run.summary = Some(message.clone());
            return JobStatus::Failed;
        }
    }
    JobStatus::Succeeded
}
