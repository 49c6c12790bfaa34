//! record-outcome: pipeline and approval state changes go into the ledger and the model card.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use tracing::info;

use crate::domain::audit::{AuditAction, AuditEntry};
use crate::domain::event::{ApprovalStatus, EventError};
use crate::domain::identity::Approver;
use crate::domain::ids::ModelPackageArn;
use crate::domain::pipeline::{ActionCategory, PipelineStage, PipelineState};
use crate::failure::Failure;
use crate::ports::{ApprovalResult, CardStatus, ExecutionStatus, PortError};

use super::gate::rules::{self, Confirmation, Reported};
use super::gate::{self, Refusal, RefusedAt};

use super::{DeployConfig, DeployPorts};

/// Why record-outcome recorded nothing.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] EventError),
    #[error("CodePipeline still shows {what} of execution {execution} running; a redelivery records the outcome once it shows it")]
    OutcomePending { execution: String, what: String },
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Aws(#[from] PortError),
}

impl Failure for RecordError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Aws(port) => port.is_retryable(),
            Self::OutcomePending { .. } => true,
            Self::InvalidEvent(_) | Self::Refused(_) => false,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::InvalidEvent(_) => "InvalidEvent",
            Self::OutcomePending { .. } => "OutcomePending",
            Self::Refused(refusal) => refusal.name(),
            Self::Aws(port) => port.name(),
        }
    }
}

const ACTION_CHANGE: &str = "CodePipeline Action Execution State Change";
const EXECUTION_CHANGE: &str = "CodePipeline Pipeline Execution State Change";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineChange {
    pub event_id: String,
    pub time: DateTime<Utc>,
    pub pipeline: String,
    pub execution_id: String,
    pub state: PipelineState,
    /// The action that changed state; `None` for the whole execution.
    pub action: Option<ActionChange>,
}

/// The action of an action's state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionChange {
    /// As the pipeline names it: one of the service's stages, or another (a pipeline changed by hand).
    pub stage: String,
    pub action: String,
    pub category: ActionCategory,
}

impl PipelineChange {
    pub fn parse(event: &Value) -> Result<Self, EventError> {
        let text = |pointer: &'static str| event.pointer(pointer).and_then(Value::as_str).map(str::to_owned).ok_or(EventError::Missing(pointer));
        let kind = text("/detail-type")?;
        if kind != ACTION_CHANGE && kind != EXECUTION_CHANGE {
            return Err(EventError::WrongDetailType(kind));
        }
        let time = DateTime::parse_from_rfc3339(&text("/time")?)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| EventError::BadTime { field: "time", value: String::new() })?;
        let action = if kind == ACTION_CHANGE {
            Some(ActionChange {
                stage: text("/detail/stage")?,
                action: text("/detail/action")?,
                category: ActionCategory::parse(&text("/detail/type/category")?),
            })
        } else {
            None
        };
        Ok(Self {
            event_id: text("/id")?,
            time,
            pipeline: text("/detail/pipeline")?,
            execution_id: text("/detail/execution-id")?,
            state: PipelineState::parse(&text("/detail/state")?),
            action,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Recorded {
    Recorded { package: ModelPackageArn, action: AuditAction },
    Ignored { reason: String },
}

pub async fn record_outcome(ports: &DeployPorts, config: &DeployConfig, event: &Value) -> Result<Recorded, RecordError> {
    let change = PipelineChange::parse(event)?;
    if change.pipeline != config.pipeline {
        return Ok(Recorded::Ignored { reason: format!("pipeline {} is not {}", change.pipeline, config.pipeline) });
    }
    let Some(execution) = ports.runs.execution(&change.pipeline, &change.execution_id).await? else {
        return Ok(Recorded::Ignored { reason: format!("CodePipeline knows no execution {}", change.execution_id) });
    };
    let Some(package) = execution.package.clone() else {
        return Ok(Recorded::Ignored { reason: format!("execution {} names no model package", change.execution_id) });
    };
    confirmed(ports, &change, &package, execution.status).await?;
    let (action, detail) = match &change.action {
        Some(ActionChange { action, category: ActionCategory::Approval, .. }) => approval(ports, &change, &package, action).await?,
        Some(ActionChange { stage, .. }) if PipelineStage::parse(stage) == Some(PipelineStage::DeployProd) => prod_deployment(ports, &change, &package).await?,
        Some(ActionChange { stage, action, .. }) => {
            (AuditAction::ActionState { stage: stage.clone(), action: action.clone(), state: change.state.clone() }, json!({}))
        }
        None => (AuditAction::Pipeline(change.state.clone()), json!({})),
    };
    let entry = AuditEntry {
        source: package.clone(),
        at: change.time,
        event_id: change.event_id.clone(),
        action: action.clone(),
        detail: json!({ "execution_id": change.execution_id, "state": change.state.as_str(), "detail": detail }),
    };
    ports.audit.append(&entry).await?;
    info!(event_id = %change.event_id, package = %package, execution_id = %change.execution_id, decision = %action, "outcome recorded");
    Ok(Recorded::Recorded { package, action })
}

/// The event is what CodePipeline reports, or nothing of it is recorded and no card is touched.
async fn confirmed(ports: &DeployPorts, change: &PipelineChange, package: &ModelPackageArn, status: ExecutionStatus) -> Result<(), RecordError> {
    let (reported, what) = match &change.action {
        Some(ActionChange { stage, action, .. }) => {
            let runs = ports.runs.action_runs(&change.pipeline, &change.execution_id).await?;
            let newest = runs.iter().find(|run| &run.stage == stage && &run.action == action).map(|run| run.status);
            (Reported::Action(newest), format!("action {stage}.{action}"))
        }
        None => (Reported::Execution(status), "the execution".to_owned()),
    };
    match rules::confirm_outcome(&change.state, &reported) {
        Confirmation::Confirmed => Ok(()),
        Confirmation::Pending => Err(RecordError::OutcomePending { execution: change.execution_id.clone(), what }),
        Confirmation::Contradicted(found) => {
            let refusal = Refusal::OutcomeContradicted { execution: change.execution_id.clone(), what, claimed: change.state.as_str().to_owned(), found };
            let at = RefusedAt { gate: "record-outcome", event_id: &change.event_id, execution_id: Some(&change.execution_id), stage: None };
            gate::audit_refusal(ports.audit.as_ref(), package, &at, &refusal).await?;
            Err(refusal.into())
        }
    }
}

async fn approval(ports: &DeployPorts, change: &PipelineChange, package: &ModelPackageArn, action: &str) -> Result<(AuditAction, Value), RecordError> {
    if change.state == PipelineState::Started {
        update_card(ports, change, package, CardStatus::PendingReview, json!({ "governance_review": "awaiting the prod approval" })).await?;
        return Ok((AuditAction::AwaitingApproval, json!({})));
    }
    // The state change can come before ListActionExecutions shows the answer: who gave it is
    // worth a redelivery (EventBridge retries), never a guess.
    let Some(ApprovalResult { approved, by, comment }) = ports.runs.approval_result(&change.pipeline, &change.execution_id, action).await? else {
        info!(event_id = %change.event_id, package = %package, execution_id = %change.execution_id, decision = "approval-result-pending", "outcome not recorded yet");
        return Err(RecordError::OutcomePending { execution: change.execution_id.clone(), what: format!("the answer to {action}") });
    };
    let who = by.clone().unwrap_or_else(|| "unknown".into());
    let detail = json!({ "by": by, "comment": comment, "at": change.time });
    if approved {
        let approver = Approver::prod(package, by.as_deref(), change.time, &change.event_id);
        crate::approvers::record(ports.approver_records.as_ref(), approver).await?;
        return Ok((AuditAction::ProdApproved, detail));
    }
    let reason = format!("Rejected for prod by {who}: {}", comment.as_deref().unwrap_or("no comment"));
    let central = ports.central_registry.describe_package(package).await?;
    if central.status != Some(ApprovalStatus::Rejected) {
        ports.central_registry.set_approval(&central, ApprovalStatus::Rejected, &reason, &[]).await?;
    }
    let note = json!({ "governance_decision": "rejected", "governance_by": who, "governance_comment": comment, "governance_at": change.time.to_rfc3339() });
    update_card(ports, change, package, CardStatus::Draft, note).await?;
    Ok((AuditAction::ProdRejected, detail))
}

async fn prod_deployment(ports: &DeployPorts, change: &PipelineChange, package: &ModelPackageArn) -> Result<(AuditAction, Value), RecordError> {
    match &change.state {
        PipelineState::Succeeded => {
            let note = json!({ "governance_decision": "approved", "deployed_to_prod_at": change.time.to_rfc3339() });
            update_card(ports, change, package, CardStatus::Approved, note).await?;
            Ok((AuditAction::ProdDeployed, json!({})))
        }
        PipelineState::Failed => Ok((AuditAction::ProdDeploy(PipelineState::Failed), json!({ "note": "the deployment failed or its alarms rolled it back" }))),
        other => Ok((AuditAction::ProdDeploy(other.clone()), json!({}))),
    }
}

/// Writes `note` into the card's custom details with a status, once per event.
async fn update_card(ports: &DeployPorts, change: &PipelineChange, package: &ModelPackageArn, status: CardStatus, note: Value) -> Result<(), RecordError> {
    let Some((name, card)) = super::card::version_card(ports.cards.as_ref(), package).await? else {
        return Ok(());
    };
    let mut content = card.content;
    let details = &mut content["additional_information"]["custom_details"];
    if details.get("governance_event_id").and_then(Value::as_str) == Some(change.event_id.as_str()) {
        return Ok(());
    }
    if let (Some(details), Some(note)) = (details.as_object_mut(), note.as_object()) {
        details.extend(note.iter().map(|(k, v)| (k.clone(), Value::String(v.as_str().map_or_else(|| v.to_string(), str::to_owned)))));
        details.insert("governance_event_id".into(), Value::String(change.event_id.clone()));
    }
    ports.cards.update(&name, &content, Some(status)).await?;
    Ok(())
}
