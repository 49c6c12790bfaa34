//! record-outcome: pipeline and approval state changes go into the ledger and the model card.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use tracing::info;

use crate::domain::card::card_name;
use crate::domain::event::{ApprovalStatus, EventError};
use crate::domain::ids::ModelPackageArn;
use crate::domain::ledger::AuditEntry;
use crate::ports::{ApprovalResult, CardStatus};

use super::{DeployConfig, DeployError, DeployPorts, DEPLOY_PROD_STAGE};

const ACTION_CHANGE: &str = "CodePipeline Action Execution State Change";
const EXECUTION_CHANGE: &str = "CodePipeline Pipeline Execution State Change";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineChange {
    pub event_id: String,
    pub time: DateTime<Utc>,
    pub pipeline: String,
    pub execution_id: String,
    pub state: String,
    /// `(stage, action, category)` of an action change; `None` for the whole execution.
    pub action: Option<(String, String, String)>,
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
        let action = if kind == ACTION_CHANGE { Some((text("/detail/stage")?, text("/detail/action")?, text("/detail/type/category")?)) } else { None };
        Ok(Self {
            event_id: text("/id")?,
            time,
            pipeline: text("/detail/pipeline")?,
            execution_id: text("/detail/execution-id")?,
            state: text("/detail/state")?,
            action,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Recorded {
    Recorded { package: ModelPackageArn, action: String },
    Ignored { reason: String },
}

pub async fn record_outcome(ports: &DeployPorts, config: &DeployConfig, event: &Value) -> Result<Recorded, DeployError> {
    let change = PipelineChange::parse(event)?;
    if change.pipeline != config.pipeline {
        return Ok(Recorded::Ignored { reason: format!("pipeline {} is not {}", change.pipeline, config.pipeline) });
    }
    let Some(package) = ports.runs.execution_package(&change.pipeline, &change.execution_id).await? else {
        return Ok(Recorded::Ignored { reason: format!("execution {} names no model package", change.execution_id) });
    };
    let (action, detail) = match &change.action {
        Some((_, action, category)) if category == "Approval" => approval(ports, &change, &package, action).await?,
        Some((stage, _, _)) if stage == DEPLOY_PROD_STAGE => prod_deployment(ports, &change, &package).await?,
        Some((stage, action, _)) => (format!("{stage}.{action}-{}", change.state.to_lowercase()), json!({})),
        None => (format!("pipeline-{}", change.state.to_lowercase()), json!({})),
    };
    let entry = AuditEntry {
        source: package.clone(),
        at: change.time,
        event_id: change.event_id.clone(),
        action: action.clone(),
        detail: json!({ "execution_id": change.execution_id, "state": change.state, "detail": detail }),
    };
    ports.ledger.append(&entry).await?;
    info!(event_id = %change.event_id, package = %package, execution_id = %change.execution_id, decision = %action, "outcome recorded");
    Ok(Recorded::Recorded { package, action })
}

async fn approval(ports: &DeployPorts, change: &PipelineChange, package: &ModelPackageArn, action: &str) -> Result<(String, Value), DeployError> {
    if change.state == "STARTED" {
        update_card(ports, change, package, CardStatus::PendingReview, json!({ "governance_review": "awaiting the prod approval" })).await?;
        return Ok(("awaiting-approval".into(), json!({})));
    }
    // The state change can come before ListActionExecutions shows the answer: who gave it is
    // worth a redelivery (EventBridge retries), never a guess.
    let Some(ApprovalResult { approved, by, comment }) = ports.runs.approval_result(&change.pipeline, &change.execution_id, action).await? else {
        info!(event_id = %change.event_id, package = %package, execution_id = %change.execution_id, decision = "approval-result-pending", "outcome not recorded yet");
        return Err(DeployError::ApprovalResultPending(change.execution_id.clone()));
    };
    let who = by.clone().unwrap_or_else(|| "unknown".into());
    let detail = json!({ "by": by, "comment": comment, "at": change.time });
    if approved {
        return Ok(("prod-approved".into(), detail));
    }
    let reason = format!("Rejected for prod by {who}: {}", comment.as_deref().unwrap_or("no comment"));
    let central = ports.central_registry.describe_package(package).await?;
    if central.status != Some(ApprovalStatus::Rejected) {
        ports.central_registry.set_approval(&central, ApprovalStatus::Rejected, &reason, &[]).await?;
    }
    let note = json!({ "governance_decision": "rejected", "governance_by": who, "governance_comment": comment, "governance_at": change.time.to_rfc3339() });
    update_card(ports, change, package, CardStatus::Draft, note).await?;
    Ok(("prod-rejected".into(), detail))
}

async fn prod_deployment(ports: &DeployPorts, change: &PipelineChange, package: &ModelPackageArn) -> Result<(String, Value), DeployError> {
    match change.state.as_str() {
        "SUCCEEDED" => {
            let note = json!({ "governance_decision": "approved", "deployed_to_prod_at": change.time.to_rfc3339() });
            update_card(ports, change, package, CardStatus::Approved, note).await?;
            Ok(("prod-deployed".into(), json!({})))
        }
        "FAILED" => Ok(("prod-deploy-failed".into(), json!({ "note": "the deployment failed or its alarms rolled it back" }))),
        other => Ok((format!("prod-deploy-{}", other.to_lowercase()), json!({}))),
    }
}

/// Writes `note` into the card's custom details with a status, once per event.
async fn update_card(ports: &DeployPorts, change: &PipelineChange, package: &ModelPackageArn, status: CardStatus, note: Value) -> Result<(), DeployError> {
    let name = card_name(package.group());
    let Some(card) = ports.cards.describe(&name).await? else {
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
