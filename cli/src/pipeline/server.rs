//! The local pipeline world over HTTP, as CodePipeline answers it (awsJson1.1: `POST /` with
//! `X-Amz-Target: CodePipeline_20150709.<Operation>`, JSON bodies in the API's shapes, refusals as
//! `{"__type": "<Exception>", "message": ...}` with HTTP 400): the SDK client of the functions and
//! of the CLI is pointed at it as the others are at moto, so that the real CodePipeline adapter
//! runs. It serves the calls the service makes; any other is an `UnknownOperationException`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use promotion_aws::codepipeline::CodePipeline;
use promotion_core::deployment::DeployPorts;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::world::{ActionRun, ActionStatus, Answer, ApprovalAnswer, Execution, JobAnswer, PipelineWorld, Refusal, StageState};

const TARGET_PREFIX: &str = "CodePipeline_20150709.";
/// `ListActionExecutions` answers at most this many runs a page (its documented default and maximum).
const PAGE_MAX: usize = 100;

/// The world, served on loopback until dropped.
pub struct LocalCodePipeline {
    pub world: Arc<PipelineWorld>,
    /// `http://127.0.0.1:<port>`: the CodePipeline endpoint of the SDK clients.
    pub url: String,
    server: JoinHandle<()>,
}

impl LocalCodePipeline {
    /// Serves `world` on an ephemeral port of 127.0.0.1, in a task of the current runtime.
    pub async fn serve(world: PipelineWorld) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let world = Arc::new(world);
        let served = world.clone();
        let server = tokio::spawn(async move {
            // Dropped with the server task: every connection ends with it.
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let world = served.clone();
                let service = service_fn(move |request| answer(world.clone(), request));
                connections.spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Ok(Self { world, url, server })
    }

    /// A CodePipeline client of the world, with `sdk`'s region and credentials (the world takes any).
    pub fn client(&self, sdk: &SdkConfig) -> aws_sdk_codepipeline::Client {
        aws_sdk_codepipeline::Client::from_conf(aws_sdk_codepipeline::config::Builder::from(sdk).endpoint_url(&self.url).build())
    }

    /// Points the ports' CodePipeline (jobs and runs: the real adapter) at the world.
    pub fn wire(&self, ports: &mut DeployPorts, sdk: &SdkConfig) {
        let adapter = Arc::new(CodePipeline::new(self.client(sdk)));
        ports.jobs = adapter.clone();
        ports.runs = adapter;
    }
}

impl Drop for LocalCodePipeline {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(world: Arc<PipelineWorld>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let target = request.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => return Ok(refused(&Refusal::Validation(format!("unreadable request body: {error}")))),
    };
    let operation = target.strip_prefix(TARGET_PREFIX).unwrap_or(&target);
    Ok(match dispatch(&world, operation, &body) {
        Ok(answer) => reply(StatusCode::OK, &answer),
        Err(Call::Refused(refusal)) => refused(&refusal),
        Err(Call::Unknown) => {
            reply(StatusCode::BAD_REQUEST, &json!({ "__type": "UnknownOperationException", "message": format!("unknown operation {target}") }))
        }
        Err(Call::Malformed(error)) => reply(StatusCode::BAD_REQUEST, &json!({ "__type": "SerializationException", "message": error })),
    })
}

enum Call {
    Refused(Refusal),
    Unknown,
    Malformed(String),
}

impl From<Refusal> for Call {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

fn dispatch(world: &PipelineWorld, operation: &str, body: &[u8]) -> Result<Value, Call> {
    Ok(match operation {
        "StartPipelineExecution" => start(world, parse(body)?)?,
        "GetPipelineExecution" => get_execution(world, parse(body)?)?,
        "GetPipelineState" => get_state(world, parse(body)?)?,
        "ListActionExecutions" => list_action_executions(world, parse(body)?)?,
        "PutApprovalResult" => put_approval_result(world, parse(body)?)?,
        "PutJobSuccessResult" => put_job_success(world, parse(body)?)?,
        "PutJobFailureResult" => put_job_failure(world, parse(body)?)?,
        "StopPipelineExecution" => stop(world, parse(body)?)?,
        _ => return Err(Call::Unknown),
    })
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Call> {
    serde_json::from_slice(body).map_err(|e| Call::Malformed(e.to_string()))
}

fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let response = Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", uuid::Uuid::new_v4().to_string())
        .body(Full::new(Bytes::from(body.to_string())));
    response.expect("a valid response")
}

fn refused(refusal: &Refusal) -> Response<Full<Bytes>> {
    let status = if refusal.is_internal() { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::BAD_REQUEST };
    reply(status, &json!({ "__type": refusal.code(), "message": refusal.to_string() }))
}

/// awsJson1.1 timestamps: seconds since the epoch.
fn seconds(at: DateTime<Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}

// -------------------------------------------------------------------- the operations

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartRequest {
    name: String,
    #[serde(default)]
    variables: Vec<Variable>,
    client_request_token: Option<String>,
}

#[derive(Deserialize)]
struct Variable {
    name: String,
    value: String,
}

fn start(world: &PipelineWorld, request: StartRequest) -> Answer<Value> {
    let variables = request.variables.into_iter().map(|v| (v.name, v.value)).collect();
    let id = world.start(&request.name, variables, request.client_request_token)?;
    Ok(json!({ "pipelineExecutionId": id }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecutionRequest {
    pipeline_name: String,
    pipeline_execution_id: String,
}

fn get_execution(world: &PipelineWorld, request: ExecutionRequest) -> Answer<Value> {
    let execution = world.execution(&request.pipeline_name, &request.pipeline_execution_id)?;
    Ok(json!({ "pipelineExecution": execution_shape(&request.pipeline_execution_id, &execution) }))
}

fn execution_shape(id: &str, execution: &Execution) -> Value {
    let variables: Vec<Value> = execution.variables.iter().map(|(name, value)| json!({ "name": name, "resolvedValue": value })).collect();
    let mut shape = json!({
        "pipelineName": execution.pipeline, "pipelineVersion": 1, "pipelineExecutionId": id, "status": execution.status.as_str(),
        "artifactRevisions": [], "variables": variables, "executionMode": "QUEUED", "executionType": "STANDARD",
        "trigger": { "triggerType": "StartPipelineExecution", "triggerDetail": "local" },
    });
    if let Some(summary) = &execution.summary {
        shape["statusSummary"] = summary.as_str().into();
    }
    shape
}

#[derive(Deserialize)]
struct StateRequest {
    name: String,
}

fn get_state(world: &PipelineWorld, request: StateRequest) -> Answer<Value> {
    let stages: Vec<Value> = world.stage_states(&request.name)?.iter().map(stage_shape).collect();
    Ok(json!({ "pipelineName": request.name, "pipelineVersion": 1, "stageStates": stages }))
}

fn stage_shape(state: &StageState) -> Value {
    let mut action = json!({ "actionName": state.action });
    let mut stage = json!({ "stageName": state.stage, "inboundTransitionState": { "enabled": true } });
    if let Some((execution_id, run)) = &state.latest {
        let mut latest = json!({ "actionExecutionId": run.id, "status": run.status.as_str(), "lastStatusChange": seconds(run.updated) });
        for (field, value) in [("summary", &run.summary), ("lastUpdatedBy", &run.updated_by)] {
            if let Some(value) = value {
                latest[field] = value.as_str().into();
            }
        }
        // CodePipeline shows the token while the approval waits for its answer.
        if let Some(token) = run.token.as_ref().filter(|_| run.status == ActionStatus::InProgress) {
            latest["token"] = token.as_str().into();
        }
        action["latestExecution"] = latest;
        // A stage is as its one action.
        let status = if run.status == ActionStatus::Abandoned { "Stopped" } else { run.status.as_str() };
        stage["latestExecution"] = json!({ "pipelineExecutionId": execution_id, "status": status });
    }
    stage["actionStates"] = json!([action]);
    stage
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListRequest {
    pipeline_name: String,
    filter: Option<ListFilter>,
    max_results: Option<usize>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListFilter {
    pipeline_execution_id: Option<String>,
}

fn list_action_executions(world: &PipelineWorld, request: ListRequest) -> Answer<Value> {
    let execution = request.filter.and_then(|f| f.pipeline_execution_id);
    let runs = world.action_runs(&request.pipeline_name, execution.as_deref())?;
    let page = request.max_results.unwrap_or(PAGE_MAX);
    if !(1..=PAGE_MAX).contains(&page) {
        return Err(Refusal::Validation(format!("maxResults {page} is not between 1 and {PAGE_MAX}")));
    }
    // The token is the index of the page's first run.
    let first = match &request.next_token {
        Some(token) => token.parse::<usize>().ok().filter(|i| *i < runs.len()).ok_or_else(|| Refusal::InvalidNextToken(token.clone()))?,
        None => 0,
    };
    let end = (first + page).min(runs.len());
    let details: Vec<Value> = runs[first..end].iter().map(|(execution_id, run)| run_shape(execution_id, run)).collect();
    let mut answer = json!({ "actionExecutionDetails": details });
    if end < runs.len() {
        answer["nextToken"] = end.to_string().into();
    }
    Ok(answer)
}

fn run_shape(execution_id: &str, run: &ActionRun) -> Value {
    let type_id = json!({ "category": run.kind.category(), "owner": "AWS", "provider": run.kind.provider(), "version": "1" });
    let mut input = json!({
        "actionTypeId": type_id, "configuration": run.configuration, "resolvedConfiguration": run.resolved,
        "region": crate::local::REGION, "inputArtifacts": [],
    });
    if let Some(namespace) = &run.namespace {
        input["namespace"] = namespace.as_str().into();
    }
    let result = run.summary.as_ref().map_or_else(|| json!({}), |summary| json!({ "externalExecutionSummary": summary }));
    let mut detail = json!({
        "pipelineExecutionId": execution_id, "actionExecutionId": run.id, "pipelineVersion": 1, "stageName": run.stage,
        "actionName": run.action, "startTime": seconds(run.started), "lastUpdateTime": seconds(run.updated), "status": run.status.as_str(),
        "input": input,
        "output": { "outputArtifacts": [], "executionResult": result, "outputVariables": run.output_variables },
    });
    if let Some(by) = &run.updated_by {
        detail["updatedBy"] = by.as_str().into();
    }
    detail
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApprovalRequest {
    pipeline_name: String,
    stage_name: String,
    action_name: String,
    result: ApprovalResult,
    token: String,
}

#[derive(Deserialize)]
struct ApprovalResult {
    status: String,
    summary: String,
}

fn put_approval_result(world: &PipelineWorld, request: ApprovalRequest) -> Answer<Value> {
    let approved = match request.result.status.as_str() {
        "Approved" => true,
        "Rejected" => false,
        other => return Err(Refusal::Validation(format!("result.status {other} is neither Approved nor Rejected"))),
    };
    let by = world.caller();
    let answer =
        ApprovalAnswer { stage: &request.stage_name, action: &request.action_name, token: &request.token, approved, summary: &request.result.summary, by: &by };
    let at = world.answer_approval(&request.pipeline_name, &answer)?;
    Ok(json!({ "approvedAt": seconds(at) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobSuccessRequest {
    job_id: String,
    continuation_token: Option<String>,
    execution_details: Option<ExecutionDetails>,
    output_variables: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct ExecutionDetails {
    summary: Option<String>,
}

fn put_job_success(world: &PipelineWorld, request: JobSuccessRequest) -> Answer<Value> {
    let answer = JobAnswer::Succeeded {
        continuation: request.continuation_token,
        summary: request.execution_details.and_then(|d| d.summary),
        variables: request.output_variables.unwrap_or_default(),
    };
    world.answer_job(&request.job_id, answer)?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobFailureRequest {
    job_id: String,
    failure_details: FailureDetails,
}

#[derive(Deserialize)]
struct FailureDetails {
    #[serde(rename = "type")]
    kind: String,
    message: String,
}

fn put_job_failure(world: &PipelineWorld, request: JobFailureRequest) -> Answer<Value> {
    world.answer_job(&request.job_id, JobAnswer::Failed { kind: request.failure_details.kind, message: request.failure_details.message })?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StopRequest {
    pipeline_name: String,
    pipeline_execution_id: String,
    #[serde(default)]
    abandon: bool,
    reason: Option<String>,
}

fn stop(world: &PipelineWorld, request: StopRequest) -> Answer<Value> {
    world.stop(&request.pipeline_name, &request.pipeline_execution_id, request.abandon, request.reason.as_deref())?;
    Ok(json!({ "pipelineExecutionId": request.pipeline_execution_id }))
}
