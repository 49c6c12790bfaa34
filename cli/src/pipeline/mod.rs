//! A local stand-in for CodePipeline, which the emulator cannot run: executes the pipeline's
//! stages in order by invoking the same handlers with real `CodePipeline.job` events, honours
//! continuation tokens, stops at the manual approval, and emits the state-change events that
//! record-outcome handles. Its executions live in a JSON file, so `promote approve` can resume one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context as _, Result};
use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use lambda_runtime::{Context, LambdaEvent};
use promotion_core::deployment::{DeployConfig, DeployPorts, JobOutcome};
use promotion_core::domain::deploy::OutputVariables;
use promotion_core::domain::ids::{ModelPackageArn, Stage};
use promotion_core::domain::pipeline::{PipelineState, APPROVAL_ACTION};
use promotion_core::ports::{
    ActionRun, ActionRunStatus, ApprovalResult, ExecutionStatus, ExecutionView, PendingApproval, PipelineJobs, PipelineRuns, PortResult,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::ui;

/// One action of the pipeline definition.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PipelineStage {
    pub name: String,
    /// `deploy-model`, `test-model` or `approval`.
    pub action: String,
    #[serde(default)]
    pub stage: Option<Stage>,
    /// Where the action's output variables go: later actions read `#{namespace.Name}`.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// The pipeline as `infra/pipeline.json` defines it for the templates and this driver alike;
/// the driver needs its stages only.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PipelineDefinition {
    pub stages: Vec<PipelineStage>,
}

impl PipelineDefinition {
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let raw = std::fs::read(path).with_context(|| format!("read the pipeline definition {}", path.display()))?;
        serde_json::from_slice(&raw).with_context(|| format!("{} is not a pipeline definition", path.display()))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Execution {
    package: String,
    next_stage: usize,
    status: String,
    approval_token: Option<String>,
    decision: Option<(bool, String)>,
    /// The output variables of the finished actions, as `Namespace.Name`.
    #[serde(default)]
    variables: BTreeMap<String, String>,
    /// Its action runs, newest first, as `ListActionExecutions` reports them.
    #[serde(default)]
    runs: Vec<RecordedRun>,
    #[serde(default)]
    stopped: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RecordedRun {
    stage: String,
    action: String,
    status: String,
    user_parameters: Option<String>,
    updated_by: Option<String>,
    summary: Option<String>,
}

impl RecordedRun {
    fn view(&self) -> Option<ActionRun> {
        let status = match self.status.as_str() {
            "InProgress" => ActionRunStatus::InProgress,
            "Succeeded" => ActionRunStatus::Succeeded,
            "Failed" => ActionRunStatus::Failed,
            "Abandoned" => ActionRunStatus::Abandoned,
            _ => return None,
        };
        Some(ActionRun {
            stage: self.stage.clone(),
            action: self.action.clone(),
            status,
            user_parameters: self.user_parameters.clone(),
            updated_by: self.updated_by.clone(),
            summary: self.summary.clone(),
            last_update: None,
        })
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    executions: BTreeMap<String, Execution>,
}

/// Executions kept in a file; implements the pipeline ports the functions and the CLI use.
pub struct LocalRuns {
    path: PathBuf,
    lock: Mutex<()>,
}

impl LocalRuns {
    pub fn new(path: PathBuf) -> Self {
        Self { path, lock: Mutex::new(()) }
    }

    fn load(&self) -> State {
        std::fs::read(&self.path).ok().and_then(|raw| serde_json::from_slice(&raw).ok()).unwrap_or_default()
    }

    fn update<T>(&self, change: impl FnOnce(&mut State) -> T) -> T {
        let _held = self.lock.lock().expect("state lock");
        let mut state = self.load();
        let result = change(&mut state);
        let raw = serde_json::to_vec_pretty(&state).expect("state serializes");
        std::fs::write(&self.path, raw).expect("the local pipeline state is writable");
        result
    }
}

#[async_trait]
impl PipelineRuns for LocalRuns {
    async fn start(&self, _pipeline: &str, package: &ModelPackageArn, token: &str) -> PortResult<String> {
        let id = format!("local-{}", token.chars().filter(char::is_ascii_alphanumeric).take(12).collect::<String>());
        self.update(|state| {
            state.executions.entry(id.clone()).or_insert(Execution { package: package.to_string(), status: "InProgress".into(), ..Execution::default() });
        });
        Ok(id)
    }

    async fn execution(&self, _pipeline: &str, execution_id: &str) -> PortResult<Option<ExecutionView>> {
        Ok(self.load().executions.get(execution_id).map(|e| {
            let status = match (e.stopped.is_some(), e.status.as_str()) {
                (true, _) => ExecutionStatus::Stopped,
                (_, "InProgress") => ExecutionStatus::InProgress,
                (_, "Succeeded") => ExecutionStatus::Succeeded,
                (_, "Failed") => ExecutionStatus::Failed,
                (_, other) => ExecutionStatus::Other(other.to_owned()),
            };
            ExecutionView { status, package: e.package.parse().ok() }
        }))
    }

    async fn action_runs(&self, _pipeline: &str, execution_id: &str) -> PortResult<Vec<ActionRun>> {
        Ok(self.load().executions.get(execution_id).map(|e| e.runs.iter().filter_map(RecordedRun::view).collect()).unwrap_or_default())
    }

    async fn stop(&self, _pipeline: &str, execution_id: &str, reason: &str) -> PortResult<()> {
        self.update(|state| {
            if let Some(execution) = state.executions.get_mut(execution_id) {
                execution.stopped.get_or_insert_with(|| reason.to_owned());
                for run in execution.runs.iter_mut().filter(|r| r.status == "InProgress") {
                    run.status = "Abandoned".into();
                }
            }
        });
        Ok(())
    }

    async fn pending_approval(&self, _pipeline: &str, _stage: &str, _action: &str) -> PortResult<Option<PendingApproval>> {
        Ok(self.load().executions.iter().find_map(|(id, e)| {
            let token = e.approval_token.clone().filter(|_| e.decision.is_none())?;
            Some(PendingApproval { token, execution_id: Some(id.clone()) })
        }))
    }

    async fn answer_approval(&self, _pipeline: &str, _stage: &str, _action: &str, token: &str, approve: bool, summary: &str) -> PortResult<()> {
        self.update(|state| {
            if let Some(execution) = state.executions.values_mut().find(|e| e.approval_token.as_deref() == Some(token)) {
                execution.decision = Some((approve, summary.to_owned()));
            }
        });
        Ok(())
    }

    async fn approval_result(&self, _pipeline: &str, execution_id: &str, _action: &str) -> PortResult<Option<ApprovalResult>> {
        let decided = self.load().executions.get(execution_id).and_then(|e| e.decision.clone());
        Ok(decided.map(|(approved, comment)| ApprovalResult {
            approved,
            by: std::env::var("USER").ok().or(Some("local operator".into())),
            comment: Some(comment),
        }))
    }
}

/// Locally the driver reads each job's answer from the handler's outcome; CodePipeline's job
/// calls have nothing to record.
#[derive(Default)]
pub struct LocalJobs;

#[async_trait]
impl PipelineJobs for LocalJobs {
    async fn succeed(&self, _job_id: &str, _continuation: Option<&str>, _summary: &str) -> PortResult<()> {
        Ok(())
    }
    async fn succeed_with_variables(&self, _job_id: &str, _summary: &str, _variables: &OutputVariables) -> PortResult<()> {
        Ok(())
    }
    async fn fail(&self, _job_id: &str, _message: &str) -> PortResult<()> {
        Ok(())
    }
}

pub struct LocalPipeline<'a> {
    pub ports: &'a DeployPorts,
    pub config: &'a DeployConfig,
    pub runs: &'a LocalRuns,
    pub stages: Vec<PipelineStage>,
}

impl LocalPipeline<'_> {
    /// Runs `execution` from where it stopped until it ends or waits for a person.
    pub async fn resume(&self, execution_id: &str) -> Result<String> {
        loop {
            let state = self.runs.load();
            let execution = state.executions.get(execution_id).cloned().context("no such local execution")?;
            let Some(stage) = self.stages.get(execution.next_stage) else {
                self.finish(execution_id, PipelineState::Succeeded).await?;
                return Ok("Succeeded".into());
            };
            let package: ModelPackageArn = execution.package.parse()?;
            let passed = match stage.action.as_str() {
                "approval" => match self.approval(execution_id, stage, &execution).await? {
                    Some(approved) => approved,
                    None => return Ok("WaitingForApproval".into()),
                },
                _ => self.lambda_action(execution_id, stage, &package).await?,
            };
            if !passed {
                self.finish(execution_id, PipelineState::Failed).await?;
                return Ok("Failed".into());
            }
            self.runs.update(|state| state.executions.get_mut(execution_id).map(|e| e.next_stage += 1));
        }
    }

    async fn lambda_action(&self, execution_id: &str, stage: &PipelineStage, package: &ModelPackageArn) -> Result<bool> {
        // As the pipeline definition resolves `#{codepipeline.PipelineExecutionId}`.
        let parameters = json!({ "stage": stage.stage, "model_package_arn": package, "execution_id": execution_id }).to_string();
        self.record_run(execution_id, stage, RunChange::Started(Some(parameters.clone())));
        self.action_event(execution_id, stage, PipelineState::Started).await?;
        let mut continuation: Option<String> = None;
        let waiting = ui::waiting(format!("{} {}", stage.name, ui::short(package)));
        let outcome = loop {
            // As in CodePipeline, every invocation of an action is a job of its own.
            let job_id = uuid::Uuid::new_v4().to_string();
            let event = job_event(&job_id, &stage.action, &parameters, continuation.as_deref());
            let context = Context::default();
            let outcome = match stage.action.as_str() {
                "deploy-model" => deploy_model::handler(self.ports, self.config, LambdaEvent::new(event, context)).await?,
                "test-model" => test_model::handler(self.ports, self.config, LambdaEvent::new(event, context)).await?,
                other => anyhow::bail!("the pipeline names an unknown action {other}"),
            };
            match outcome {
                JobOutcome::Continuing { continuation: token, summary } => {
                    if ui::output() == ui::Output::Wide {
                        ui::say(format!("{:<12} {summary}", stage.name));
                    }
                    waiting.set_message(format!("{:<12} {}", stage.name, crate::history::words(package.group(), &summary)));
                    continuation = Some(token);
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                done => break done,
            }
        };
        drop(waiting);
        if let (JobOutcome::Succeeded { variables, .. }, Some(namespace)) = (&outcome, &stage.namespace) {
            let named = variables.iter().map(|(name, value)| (format!("{namespace}.{name}"), value.clone()));
            self.runs.update(|state| state.executions.get_mut(execution_id).map(|e| e.variables.extend(named)));
        }
        let (passed, text) = match &outcome {
            JobOutcome::Succeeded { summary, .. } => (true, summary.clone()),
            JobOutcome::Failed { message, .. } => (false, message.clone()),
            JobOutcome::Continuing { .. } => unreachable!("the loop ends on a final answer"),
        };
        let text = if ui::output() == ui::Output::Wide { text } else { crate::history::words(package.group(), &text) };
        ui::say(format!("{:<12} {} {text}", stage.name, if passed { ui::paint(ui::GOOD, "ok    ") } else { ui::paint(ui::BAD, "FAILED") }));
        self.record_run(execution_id, stage, RunChange::Ended { passed, by: None, summary: Some(text.clone()) });
        self.action_event(execution_id, stage, if passed { PipelineState::Succeeded } else { PipelineState::Failed }).await?;
        Ok(passed)
    }

    /// `Some(decision)` once a person answered; `None` while the approval waits.
    async fn approval(&self, execution_id: &str, stage: &PipelineStage, execution: &Execution) -> Result<Option<bool>> {
        if execution.approval_token.is_none() {
            let token = uuid::Uuid::new_v4().to_string();
            self.runs.update(|state| state.executions.get_mut(execution_id).map(|e| e.approval_token = Some(token)));
            self.record_run(execution_id, stage, RunChange::Started(None));
            self.action_event(execution_id, stage, PipelineState::Started).await?;
        }
        let decision = self.runs.load().executions.get(execution_id).and_then(|e| e.decision.clone());
        let Some((approved, comment)) = decision else {
            let package: Option<ModelPackageArn> = execution.package.parse().ok();
            let model = package.as_ref().map_or_else(|| "MODEL".to_owned(), |p| p.group().to_string());
            ui::say(format!("{:<12} {} for a governance officer: promote approve|reject {model} --comment ...", stage.name, ui::paint(ui::WARN, "waits ")));
            // What CodePipeline resolves in the approval's link and text.
            for (name, value) in &execution.variables {
                if ui::output() == ui::Output::Wide {
                    ui::say(format!("{:<12} #{{{name}}} = {value}", ""));
                } else if let Some(("TestModel", variable @ ("TestSummary" | "ReportKey"))) = name.split_once('.') {
                    ui::say(format!(
                        "{:<12} {} {}",
                        "",
                        if variable == "ReportKey" { "report " } else { "tests  " },
                        value.rsplit('/').next().unwrap_or(value)
                    ));
                }
            }
            return Ok(None);
        };
        let decided = if approved { ui::paint(ui::GOOD, "ok    ") } else { ui::paint(ui::BAD, "FAILED") };
        ui::say(format!("{:<12} {decided} {} (\"{comment}\")", stage.name, if approved { "approved" } else { "rejected" }));
        let by = std::env::var("USER").ok().or(Some("local operator".into()));
        self.record_run(execution_id, stage, RunChange::Ended { passed: approved, by, summary: Some(comment) });
        self.action_event(execution_id, stage, if approved { PipelineState::Succeeded } else { PipelineState::Failed }).await?;
        Ok(Some(approved))
    }

    /// What CodePipeline would list of the action's runs in this execution.
    fn record_run(&self, execution_id: &str, stage: &PipelineStage, change: RunChange) {
        let action = if stage.action == "approval" { APPROVAL_ACTION.to_owned() } else { stage.name.clone() };
        self.runs.update(|state| {
            let Some(execution) = state.executions.get_mut(execution_id) else { return };
            match change {
                RunChange::Started(user_parameters) => execution.runs.insert(
                    0,
                    RecordedRun { stage: stage.name.clone(), action, status: "InProgress".into(), user_parameters, updated_by: None, summary: None },
                ),
                RunChange::Ended { passed, by, summary } => {
                    if let Some(run) = execution.runs.iter_mut().find(|r| r.stage == stage.name && r.status == "InProgress") {
                        run.status = if passed { "Succeeded" } else { "Failed" }.into();
                        run.updated_by = by;
                        run.summary = summary;
                    }
                }
            }
        });
    }

    async fn action_event(&self, execution_id: &str, stage: &PipelineStage, state: PipelineState) -> Result<()> {
        let category = if stage.action == "approval" { "Approval" } else { "Invoke" };
        let action = if stage.action == "approval" { APPROVAL_ACTION.to_owned() } else { stage.name.clone() };
        let detail = json!({ "pipeline": self.config.pipeline, "execution-id": execution_id, "stage": stage.name, "action": action, "state": state.as_str(), "type": { "category": category } });
        self.outcome_event("CodePipeline Action Execution State Change", detail).await
    }

    async fn finish(&self, execution_id: &str, state: PipelineState) -> Result<()> {
        self.runs.update(|s| s.executions.get_mut(execution_id).map(|e| e.status = state.as_str().to_owned()));
        let detail = json!({ "pipeline": self.config.pipeline, "execution-id": execution_id, "state": state.as_str() });
        self.outcome_event("CodePipeline Pipeline Execution State Change", detail).await
    }

    async fn outcome_event(&self, detail_type: &str, detail: Value) -> Result<()> {
        let event = json!({
            "version": "0", "id": uuid::Uuid::new_v4().to_string(), "detail-type": detail_type, "source": "aws.codepipeline",
            "account": self.config.central_account.to_string(), "time": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            "region": "us-east-1", "resources": [], "detail": detail,
        });
        record_outcome::handler(self.ports, self.config, LambdaEvent::new(event, Context::default())).await?;
        Ok(())
    }
}

enum RunChange {
    Started(Option<String>),
    Ended { passed: bool, by: Option<String>, summary: Option<String> },
}

fn job_event(job_id: &str, function: &str, parameters: &str, continuation: Option<&str>) -> Value {
    let mut data = json!({
        "actionConfiguration": { "configuration": { "FunctionName": function, "UserParameters": parameters } },
        "inputArtifacts": [], "outputArtifacts": [],
        "artifactCredentials": { "accessKeyId": "LOCAL", "secretAccessKey": "LOCAL", "sessionToken": "LOCAL" },
    });
    if let Some(token) = continuation {
        data["continuationToken"] = token.into();
    }
    json!({ "CodePipeline.job": { "id": job_id, "accountId": "222222222222", "data": data } })
}
