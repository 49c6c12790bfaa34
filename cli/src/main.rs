use promotion_core::failure::Failure;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use chrono::Utc;
use clap::{Parser, Subcommand};
use lambda_runtime::{Context, LambdaEvent};
use promote_cli::{governance, local, replay, status};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

use promote_cli::pipeline::{LocalJobs, LocalPipeline, LocalRuns, PipelineDefinition};
use promotion_aws::sagemaker::SageMakerRegistry;
use promotion_aws::wiring::{deploy_from_env, load_sdk_config, promote_ports};
use promotion_core::config::PromoteConfig;
use promotion_core::deployment::start::StartOutcome;
use promotion_core::deployment::{history, rollback};
use promotion_core::deployment::{DeployConfig, DeployPorts};
use promotion_core::domain::copy::CopySettings;
use promotion_core::domain::deploy::StageConfig;
use promotion_core::domain::event::ApprovalStatus;
use promotion_core::domain::ids::Stage;

/// Operate the model promotion service.
#[derive(Parser)]
#[command(name = "promote", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a function's handler in-process on an event file, against the AWS the environment
    /// names (replays a dead-lettered event; a Lambda destination record is replayed as the
    /// `requestPayload` it wraps). Prints the outcome as JSON.
    Invoke {
        #[arg(value_parser = ["promote-model", "start-deployment", "deploy-model", "test-model", "record-outcome"])]
        function: String,
        #[arg(long)]
        event: PathBuf,
    },
    /// Every promoted version: source, central version, approval status, card version, when.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Approve the version of MODEL (a central group) that waits for the prod approval.
    Approve(Decision),
    /// Reject the version of MODEL that waits for the prod approval.
    Reject(Decision),
    /// Redeploy the version a stage ran before its latest deployment.
    Rollback {
        model: String,
        #[arg(long)]
        stage: Stage,
    },
    /// The ordered audit trail of every version of MODEL (a central group).
    History {
        model: String,
        #[arg(long)]
        json: bool,
    },
    /// The local AWS emulator.
    Local {
        #[command(subcommand)]
        command: LocalCommand,
    },
}

#[derive(clap::Args)]
struct Decision {
    model: String,
    #[arg(long, default_value = "prod")]
    stage: Stage,
    #[arg(long, default_value = "")]
    comment: String,
}

#[derive(Subcommand)]
enum LocalCommand {
    /// Provision the four accounts on the emulator at ENDPOINT; prints the shell environment.
    Provision {
        #[arg(long, default_value = "http://127.0.0.1:5000")]
        endpoint: String,
    },
    /// Approve (or reject) the dev model version as a lead data scientist would, and write the
    /// state-change event EventBridge forwards to the central account.
    Decide {
        #[arg(long, env = "DEV_MODEL_PACKAGE_ARN")]
        package: String,
        #[arg(long)]
        reject: bool,
        #[arg(long)]
        out: PathBuf,
    },
    /// Queue the replies the emulated endpoints of ACCOUNT give to the next invocations.
    Replies {
        #[arg(long)]
        account: String,
        bodies: Vec<String>,
    },
    /// Approve the central version as an ML engineer and run the deploy pipeline locally, stage
    /// by stage as infra/pipeline.json lists them, up to the prod approval (or through it).
    Pipeline {
        /// The central model package version.
        #[arg(long)]
        package: String,
        /// Answer the prod approval at once (as `promote approve` would).
        #[arg(long, conflicts_with = "reject")]
        approve: bool,
        #[arg(long)]
        reject: bool,
        #[arg(long, default_value = "approved in the local demo")]
        comment: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    promotion_aws::telemetry::init();
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Invoke { function, event } => invoke(&function, &event).await,
        Command::Status { json } => {
            let config = PromoteConfig::from_env()?;
            let sdk = load_sdk_config().await;
            let ports = promote_ports(&sdk, &config);
            let central = SageMakerRegistry::new(aws_sdk_sagemaker::Client::new(&sdk));
            let stages = StageConfig::parse(&std::env::var("STAGE_CONFIG").context("STAGE_CONFIG is not set: source .local/env")?)?;
            let rows = status::status(ports.ledger.as_ref(), &central, &stages).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", status::render(&rows));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Approve(decision) => decide(decision, true).await,
        Command::Reject(decision) => decide(decision, false).await,
        Command::Rollback { model, stage } => {
            let (ports, config) = deploy_context().await?;
            let restored = rollback::roll_back(&ports, &config, &model.parse()?, stage, Duration::from_secs(5)).await?;
            println!("{} {stage} runs {} again (config {})", restored.endpoint, restored.package, restored.config);
            Ok(ExitCode::SUCCESS)
        }
        Command::History { model, json } => {
            let (ports, _) = deploy_context().await?;
            let entries = history::history(ports.ledger.as_ref(), &model.parse()?).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
            }
            for entry in entries.iter().filter(|_| !json) {
                println!("{}  {:<26} {}  {}", entry.at.to_rfc3339(), entry.action, entry.source, entry.detail);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Local { command: LocalCommand::Pipeline { package, approve, reject, comment } } => {
            local_pipeline(&package, (approve || reject).then_some((approve, comment))).await
        }
        Command::Local { command: LocalCommand::Replies { account, bodies } } => {
            let endpoint = std::env::var("AWS_ENDPOINT_URL").context("AWS_ENDPOINT_URL is not set: source .local/env")?;
            let results: Vec<Value> = bodies.iter().map(|b| json!({ "Body": b, "ContentType": "text/csv" })).collect();
            local::queue_endpoint_results(&endpoint, &account, &results).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Local { command: LocalCommand::Provision { endpoint } } => {
            let world = local::provision(&endpoint, local::Names::with_suffix(""), CopySettings::default()).await?;
            print!("{}", world.env_file().await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Local { command: LocalCommand::Decide { package, reject, out } } => {
            let package = package.parse()?;
            let sdk = load_sdk_config().await;
            let dev = local::session_in(&sdk, local::DEV_ACCOUNT).await?;
            local::set_dev_approval(&dev, &package, !reject).await?;
            let event = local::approval_event(&package, if reject { "Rejected" } else { "Approved" });
            std::fs::write(&out, serde_json::to_vec_pretty(&event)?).with_context(|| format!("write {}", out.display()))?;
            eprintln!("{} {package}; event written to {}", if reject { "rejected" } else { "approved" }, out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The deploy ports; with `PROMOTE_LOCAL_PIPELINE` set (by `make local-up`), the pipeline is the local driver's.
async fn deploy_context() -> Result<(DeployPorts, DeployConfig)> {
    let (mut ports, config) = deploy_from_env().await?;
    if let Some(state) = std::env::var_os("PROMOTE_LOCAL_PIPELINE") {
        ports.runs = Arc::new(LocalRuns::new(PathBuf::from(state)));
        ports.jobs = Arc::new(LocalJobs);
    }
    Ok((ports, config))
}

fn local_runs() -> Result<LocalRuns> {
    let state = std::env::var_os("PROMOTE_LOCAL_PIPELINE").context("PROMOTE_LOCAL_PIPELINE is not set: source .local/env")?;
    Ok(LocalRuns::new(PathBuf::from(state)))
}

fn definition() -> Result<PipelineDefinition> {
    PipelineDefinition::load(std::path::Path::new("infra/pipeline.json"))
}

async fn decide(decision: Decision, approve: bool) -> Result<ExitCode> {
    anyhow::ensure!(decision.stage == Stage::Prod, "only the prod stage waits for an approval");
    let (ports, config) = deploy_context().await?;
    let answered = governance::decide_prod(&ports, &config, &decision.model.parse()?, approve, &decision.comment, &mut std::io::stdout()).await?;
    if let Ok(runs) = local_runs() {
        let pipeline = LocalPipeline { ports: &ports, config: &config, runs: &runs, stages: definition()?.stages };
        println!("local pipeline {}: {}", answered.execution_id, pipeline.resume(&answered.execution_id).await?);
    }
    Ok(ExitCode::SUCCESS)
}

/// What an ML engineer's approval of the central version sets off, with the pipeline run locally.
async fn local_pipeline(package: &str, decision: Option<(bool, String)>) -> Result<ExitCode> {
    let package: promotion_core::domain::ids::ModelPackageArn = package.parse()?;
    let (ports, config) = deploy_context().await?;
    let runs = local_runs()?;
    let central = ports.central_registry.describe_package(&package).await?;
    ports.central_registry.set_approval(&central, ApprovalStatus::Approved, "approved by the ML engineer (local demo)", &[]).await?;
    let mut context = Context::default();
    context.deadline = u64::try_from((Utc::now() + chrono::Duration::minutes(1)).timestamp_millis())?;
    let event = local::approval_event(&package, "Approved");
    let started = start_deployment::handler(&ports, &config, LambdaEvent::new(event, context)).await?;
    println!("{}", serde_json::to_string(&started)?);
    let (StartOutcome::Started { execution_id, .. } | StartOutcome::AlreadyStarted { execution_id, .. }) = started else {
        anyhow::bail!("the approval started no execution");
    };
    let pipeline = LocalPipeline { ports: &ports, config: &config, runs: &runs, stages: definition()?.stages };
    let mut status = pipeline.resume(&execution_id).await?;
    if let (Some((approve, comment)), "WaitingForApproval") = (decision, status.as_str()) {
        governance::decide_prod(&ports, &config, package.group(), approve, &comment, &mut std::io::stdout()).await?;
        status = pipeline.resume(&execution_id).await?;
    }
    println!("local pipeline {execution_id}: {status}");
    Ok(if status == "Failed" { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Runs a function's handler in-process, as Lambda would, and prints its answer as JSON.
async fn invoke(function: &str, path: &PathBuf) -> Result<ExitCode> {
    let raw = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let payload: Value = serde_json::from_slice(&raw).with_context(|| format!("{} is not JSON", path.display()))?;
    // A dead-lettered record of Lambda's on-failure destination is replayed as the event it wraps.
    let payload = replay::lambda_event(payload);
    let mut context = Context::default();
    context.request_id = format!("cli-{}", uuid::Uuid::new_v4());
    context.deadline = u64::try_from((Utc::now() + chrono::Duration::minutes(15)).timestamp_millis())?;
    let event = LambdaEvent::new(payload, context);
    let answer = if function == "promote-model" {
        let config = PromoteConfig::from_env()?;
        let ports = promote_ports(&load_sdk_config().await, &config);
        answer(promote_model::handler(&ports, &config, event).await.map_err(failed))
    } else {
        let (ports, config) = deploy_context().await?;
        match function {
            "start-deployment" => answer(start_deployment::handler(&ports, &config, event).await.map_err(failed)),
            "deploy-model" => answer(deploy_model::handler(&ports, &config, event).await.map_err(failed)),
            "test-model" => answer(test_model::handler(&ports, &config, event).await.map_err(failed)),
            _ => answer(record_outcome::handler(&ports, &config, event).await.map_err(failed)),
        }
    };
    let (code, report) = answer?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(code)
}

/// A refusal as a replay shows it: its errorType and message.
fn failed(error: impl Failure) -> (String, String) {
    (error.error_type(), error.to_string())
}

/// The outcome, or the typed error with a failing exit code (how a replay tells it was refused).
fn answer<T: serde::Serialize>(result: Result<T, (String, String)>) -> Result<(ExitCode, Value)> {
    Ok(match result {
        Ok(outcome) => (ExitCode::SUCCESS, serde_json::to_value(outcome)?),
        Err((error_type, error_message)) => (ExitCode::FAILURE, json!({ "error_type": error_type, "error_message": error_message })),
    })
}
