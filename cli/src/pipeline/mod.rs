//! A local CodePipeline, which the emulator lacks. The world (`world.rs`) holds the pipeline's
//! executions, action runs and jobs in a JSON file; the server (`server.rs`) answers CodePipeline's
//! API from it over HTTP, so that the functions and the CLI talk to it through the real adapter;
//! the driver here plays CodePipeline's engine: it runs an execution's stages in order as
//! `infra/pipeline.json` lists them, creates each Lambda action's job in the world and invokes the
//! same handler with the `CodePipeline.job` event, then reads the job's answer from the world (what
//! the function told CodePipeline), honours continuation tokens and output variables, stops at the
//! manual approval until it is answered through `PutApprovalResult`, runs nothing more of a stopped
//! execution, and emits the state-change events that record-outcome handles.

mod server;
pub mod world;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{Context as _, Result};
use chrono::{SecondsFormat, Utc};
use lambda_runtime::{Context, LambdaEvent};
use promotion_core::deployment::{DeployConfig, DeployPorts};
use promotion_core::domain::ids::{ModelPackageArn, Stage};
use promotion_core::domain::pipeline::PipelineState;
use promotion_core::failure::Failure;
use serde::Deserialize;
use serde_json::{json, Value};

pub use server::LocalCodePipeline;
pub use world::PipelineWorld;
use world::{ActionKind, ActionStatus, Execution, ExecutionStatus, JobAnswer, OpenedJob};

use crate::ui;

/// Lambda invokes CodePipeline's functions asynchronously: a failed invocation is tried twice more.
const LAMBDA_ATTEMPTS: usize = 3;

/// One stage of the pipeline definition. Its one action bears the stage's name
/// (`infra/check_drift.py` holds the template to that).
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

impl PipelineStage {
    pub fn kind(&self) -> ActionKind {
        if self.action == "approval" {
            ActionKind::ManualApproval
        } else {
            ActionKind::Lambda
        }
    }

    /// The action's configuration as `infra/central-account.yaml` declares it, variables unresolved.
    fn configuration(&self, variable: &str) -> BTreeMap<String, String> {
        if self.kind() == ActionKind::ManualApproval {
            return BTreeMap::new();
        }
        let stage = self.stage.map(|s| format!(r#""stage":"{s}","#)).unwrap_or_default();
        let parameters = format!(r##"{{{stage}"model_package_arn":"#{{variables.{variable}}}","execution_id":"#{{codepipeline.PipelineExecutionId}}"}}"##);
        BTreeMap::from([("FunctionName".to_owned(), self.action.clone()), ("UserParameters".to_owned(), parameters)])
    }
}

/// The pipeline as `infra/pipeline.json` defines it for the templates and this driver alike.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PipelineDefinition {
    pub name: String,
    /// The pipeline-level variable that names the version an execution deploys.
    pub variable: String,
    pub stages: Vec<PipelineStage>,
}

impl PipelineDefinition {
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let raw = std::fs::read(path).with_context(|| format!("read the pipeline definition {}", path.display()))?;
        serde_json::from_slice(&raw).with_context(|| format!("{} is not a pipeline definition", path.display()))
    }
}

/// Where the driver left an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    Succeeded,
    Failed,
    Stopped,
    /// At the manual approval, until a person answers it.
    WaitingForApproval,
}

impl fmt::Display for Reached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Stopped => "Stopped",
            Self::WaitingForApproval => "WaitingForApproval",
        })
    }
}

/// How one action of an execution ended, as far as the driver could take it.
enum ActionEnd {
    Passed,
    Failed,
    /// Its execution was stopped.
    Stopped,
    Waiting,
}

/// CodePipeline's engine over the world, with the functions' handlers as its Lambda actions.
pub struct LocalPipeline<'a> {
    pub ports: &'a DeployPorts,
    pub config: &'a DeployConfig,
    pub world: &'a PipelineWorld,
}

impl LocalPipeline<'_> {
    /// Runs `execution_id` from where it is until it ends or waits for a person.
    pub async fn resume(&self, execution_id: &str) -> Result<Reached> {
        loop {
            let execution = self.world.execution_by_id(execution_id)?;
            match execution.status {
                ExecutionStatus::InProgress => {}
                // Stopped without abandoning: the running action (an approval) finishes first.
                ExecutionStatus::Stopping if execution.runs.iter().any(|r| r.status == ActionStatus::InProgress) => {}
                ExecutionStatus::Stopping => {
                    self.world.end(execution_id, ExecutionStatus::Stopped)?;
                    return Ok(Reached::Stopped);
                }
                ExecutionStatus::Stopped => return Ok(Reached::Stopped),
                ExecutionStatus::Succeeded => return Ok(Reached::Succeeded),
                ExecutionStatus::Failed => return Ok(Reached::Failed),
            }
            let Some(stage) = self.world.definition().stages.get(execution.next_stage) else {
                self.finish(execution_id, ExecutionStatus::Succeeded).await?;
                return Ok(Reached::Succeeded);
            };
            let ended = match stage.kind() {
                ActionKind::ManualApproval => self.approval(execution_id, stage, &execution).await?,
                ActionKind::Lambda => self.lambda_action(execution_id, stage, &execution).await?,
            };
            match ended {
                ActionEnd::Passed => self.world.advance(execution_id)?,
                ActionEnd::Failed => {
                    self.finish(execution_id, ExecutionStatus::Failed).await?;
                    return Ok(Reached::Failed);
                }
                // The top of the loop completes the stop.
                ActionEnd::Stopped => {}
                ActionEnd::Waiting => return Ok(Reached::WaitingForApproval),
            }
        }
    }

    /// The version an execution deploys, for what the driver prints.
    fn package(&self, execution: &Execution) -> Option<ModelPackageArn> {
        execution.variables.get(&self.world.definition().variable).and_then(|raw| raw.parse().ok())
    }

    /// `text` as the concise output shows it: ARNs and reports of the execution's model in words.
    fn words(&self, package: Option<&ModelPackageArn>, text: &str) -> String {
        match package {
            Some(package) if ui::output() != ui::Output::Wide => crate::history::words(package.group(), text),
            _ => text.to_owned(),
        }
    }

    async fn lambda_action(&self, execution_id: &str, stage: &PipelineStage, execution: &Execution) -> Result<ActionEnd> {
        let package = self.package(execution);
        let Some(run_id) = self.world.begin_action(execution_id, stage)? else {
            return Ok(ActionEnd::Stopped);
        };
        self.action_event(execution_id, stage, PipelineState::Started).await?;
        let waiting = ui::waiting(format!("{} {}", stage.name, package.as_ref().map(ui::short).unwrap_or_default()));
        // As in CodePipeline, every invocation of an action is a job of its own, until a job
        // answers without a continuation token.
        while let Some(job) = self.world.open_job(execution_id, &run_id)? {
            self.invoke(stage, &job).await?;
            let Some(JobAnswer::Succeeded { continuation: Some(_), summary, .. }) = self.world.job(&job.id)?.answer else { break };
            let summary = summary.unwrap_or_default();
            if ui::output() == ui::Output::Wide {
                ui::say(format!("{:<12} {summary}", stage.name));
            }
            waiting.set_message(format!("{:<12} {}", stage.name, self.words(package.as_ref(), &summary)));
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        drop(waiting);
        let run = self.world.action_run(execution_id, &run_id)?;
        let text = self.words(package.as_ref(), run.summary.as_deref().unwrap_or_default());
        let (ended, state, said) = match run.status {
            ActionStatus::Succeeded => (ActionEnd::Passed, PipelineState::Succeeded, ui::paint(ui::GOOD, "ok    ")),
            ActionStatus::Failed => (ActionEnd::Failed, PipelineState::Failed, ui::paint(ui::BAD, "FAILED")),
            ActionStatus::Abandoned => (ActionEnd::Stopped, PipelineState::Abandoned, ui::paint(ui::WARN, "ABANDONED")),
            ActionStatus::InProgress => anyhow::bail!("the {} run of execution {execution_id} got no final answer", stage.name),
        };
        ui::say(format!("{:<12} {said} {text}", stage.name));
        self.action_event(execution_id, stage, state).await?;
        Ok(ended)
    }

    /// Invokes the action's function with the job's event, as Lambda does for CodePipeline:
    /// asynchronously, so a failed invocation is tried again; a job still unanswered after that
    /// times out and fails its action.
    async fn invoke(&self, stage: &PipelineStage, job: &OpenedJob) -> Result<()> {
        let event = job_event(job);
        let mut failure = String::from("it returned without answering");
        for _ in 0..LAMBDA_ATTEMPTS {
            let invocation = LambdaEvent::new(event.clone(), Context::default());
            let returned = match stage.action.as_str() {
                "deploy-model" => deploy_model::handler(self.ports, self.config, invocation).await.map(drop),
                "test-model" => test_model::handler(self.ports, self.config, invocation).await.map(drop),
                other => anyhow::bail!("the pipeline names an unknown function {other}"),
            };
            if self.world.job(&job.id)?.answer.is_some() {
                return Ok(());
            }
            match returned {
                Ok(()) => break,
                Err(error) => failure = format!("{}: {error}", error.error_type()),
            }
        }
        self.world.time_out(&job.id, &format!("the job timed out: {} answered nothing ({failure})", stage.action))?;
        Ok(())
    }

    /// The approval waits (printing what its request shows) until a person answers it.
    async fn approval(&self, execution_id: &str, stage: &PipelineStage, execution: &Execution) -> Result<ActionEnd> {
        let run = match execution.runs.iter().rev().find(|r| r.stage == stage.name) {
            Some(run) => run.clone(),
            None => {
                let Some(run_id) = self.world.begin_action(execution_id, stage)? else {
                    return Ok(ActionEnd::Stopped);
                };
                self.action_event(execution_id, stage, PipelineState::Started).await?;
                self.world.action_run(execution_id, &run_id)?
            }
        };
        let (ended, state, said, verb) = match run.status {
            ActionStatus::InProgress => {
                self.show_waiting(stage, execution);
                return Ok(ActionEnd::Waiting);
            }
            ActionStatus::Abandoned => return Ok(ActionEnd::Stopped),
            ActionStatus::Succeeded => (ActionEnd::Passed, PipelineState::Succeeded, ui::paint(ui::GOOD, "ok    "), "approved"),
            ActionStatus::Failed => (ActionEnd::Failed, PipelineState::Failed, ui::paint(ui::BAD, "FAILED"), "rejected"),
        };
        ui::say(format!("{:<12} {said} {verb} (\"{}\")", stage.name, run.summary.as_deref().unwrap_or_default()));
        self.action_event(execution_id, stage, state).await?;
        Ok(ended)
    }

    fn show_waiting(&self, stage: &PipelineStage, execution: &Execution) {
        let model = self.package(execution).map_or_else(|| "MODEL".to_owned(), |p| p.group().to_string());
        ui::say(format!("{:<12} {} for a governance officer: promote approve|reject {model} --comment ...", stage.name, ui::paint(ui::WARN, "waits ")));
        // What CodePipeline resolves in the approval's link and text.
        for (name, value) in execution.outputs() {
            if ui::output() == ui::Output::Wide {
                ui::say(format!("{:<12} #{{{name}}} = {value}", ""));
            } else if let Some(("TestModel", variable @ ("TestSummary" | "ReportKey"))) = name.split_once('.') {
                let label = if variable == "ReportKey" { "report " } else { "tests  " };
                ui::say(format!("{:<12} {label} {}", "", value.rsplit('/').next().unwrap_or(&value)));
            }
        }
    }

    async fn action_event(&self, execution_id: &str, stage: &PipelineStage, state: PipelineState) -> Result<()> {
        let detail = json!({
            "pipeline": self.config.pipeline, "execution-id": execution_id, "stage": stage.name, "action": stage.name,
            "state": state.as_str(), "type": { "category": stage.kind().category() },
        });
        self.outcome_event("CodePipeline Action Execution State Change", detail).await
    }

    async fn finish(&self, execution_id: &str, status: ExecutionStatus) -> Result<()> {
        self.world.end(execution_id, status)?;
        let state = if status == ExecutionStatus::Succeeded { PipelineState::Succeeded } else { PipelineState::Failed };
        let detail = json!({ "pipeline": self.config.pipeline, "execution-id": execution_id, "state": state.as_str() });
        self.outcome_event("CodePipeline Pipeline Execution State Change", detail).await
    }

    async fn outcome_event(&self, detail_type: &str, detail: Value) -> Result<()> {
        let event = json!({
            "version": "0", "id": uuid::Uuid::new_v4().to_string(), "detail-type": detail_type, "source": "aws.codepipeline",
            "account": self.config.central_account.to_string(), "time": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            "region": crate::local::REGION, "resources": [], "detail": detail,
        });
        record_outcome::handler(self.ports, self.config, LambdaEvent::new(event, Context::default())).await?;
        Ok(())
    }
}

/// The event Lambda hands the function: the job, its resolved configuration, and the previous
/// job's continuation token.
fn job_event(job: &OpenedJob) -> Value {
    let mut data = json!({
        "actionConfiguration": { "configuration": job.configuration },
        "inputArtifacts": [], "outputArtifacts": [],
        "artifactCredentials": { "accessKeyId": "LOCAL", "secretAccessKey": "LOCAL", "sessionToken": "LOCAL" },
    });
    if let Some(token) = &job.continuation {
        data["continuationToken"] = token.as_str().into();
    }
    json!({ "CodePipeline.job": { "id": job.id, "accountId": crate::local::CENTRAL_ACCOUNT, "data": data } })
}
