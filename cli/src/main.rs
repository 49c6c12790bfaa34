use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use chrono::Utc;
use clap::{Parser, Subcommand};
use lambda_runtime::{Context, LambdaEvent};
use promote_cli::{local, status};
use serde_json::{json, Value};
use shared::adapters::{load_sdk_config, promote_ports, sagemaker::SageMakerRegistry};
use shared::config::PromoteConfig;
use shared::domain::copy::CopySettings;

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
    /// names (replays a dead-lettered event). Prints the outcome as JSON.
    Invoke {
        #[arg(value_parser = ["promote-model"])]
        function: String,
        #[arg(long)]
        event: PathBuf,
    },
    /// Every promoted version: source, central version, approval status, card version, when.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The local AWS emulator.
    Local {
        #[command(subcommand)]
        command: LocalCommand,
    },
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
}

#[tokio::main]
async fn main() -> ExitCode {
    shared::telemetry::init();
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
        Command::Invoke { event, .. } => invoke_promote_model(&event).await,
        Command::Status { json } => {
            let config = PromoteConfig::from_env()?;
            let sdk = load_sdk_config().await;
            let ports = promote_ports(&sdk, &config);
            let central = SageMakerRegistry::new(aws_sdk_sagemaker::Client::new(&sdk));
            let rows = status::status(ports.ledger.as_ref(), &central).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", status::render(&rows));
            }
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

async fn invoke_promote_model(path: &PathBuf) -> Result<ExitCode> {
    let raw = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let payload: Value = serde_json::from_slice(&raw).with_context(|| format!("{} is not JSON", path.display()))?;
    let config = PromoteConfig::from_env()?;
    let sdk = load_sdk_config().await;
    let ports = promote_ports(&sdk, &config);
    let mut context = Context::default();
    context.request_id = format!("cli-{}", uuid::Uuid::new_v4());
    context.deadline = u64::try_from((Utc::now() + chrono::Duration::minutes(15)).timestamp_millis())?;
    match promote_model::handler(&ports, &config, LambdaEvent::new(payload, context)).await {
        Ok(outcome) => {
            println!("{}", serde_json::to_string_pretty(&outcome)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            let report = json!({ "error_type": error.error_type(), "error_message": error.to_string() });
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(ExitCode::FAILURE)
        }
    }
}
