use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use chrono::Utc;
use clap::{Parser, Subcommand};
use lambda_runtime::{Context, LambdaEvent};
use promote_cli::exit::{self, Exit};
use promote_cli::pipeline::{LocalCodePipeline, LocalPipeline, PipelineDefinition, PipelineWorld, Reached};
use promote_cli::rollback_role::{rollback_role, RollbackSessions};
use promote_cli::ui::{self, Output};
use promote_cli::{audit, governance, history, local, replay, status};
use promotion_aws::sagemaker::SageMakerRegistry;
use promotion_aws::sts::{RoleSessions, SourceRegistries};
use promotion_aws::wiring::{load_sdk_config, operator_deploy_ports, operator_promote_ports};
use promotion_core::config::{PromoteConfig, DEFAULT_SOURCE_READ_ROLE};
use promotion_core::deployment::start::StartOutcome;
use promotion_core::deployment::{history as trail, rollback};
use promotion_core::deployment::{DeployConfig, DeployPorts};
use promotion_core::domain::cloudtrail::ApprovalCall;
use promotion_core::domain::copy::CopySettings;
use promotion_core::domain::deploy::StageConfig;
use promotion_core::domain::event::ApprovalStatus;
use promotion_core::domain::ids::{AccountId, GroupName, ModelPackageArn, Stage};
use promotion_core::domain::operator::Operator;
use promotion_core::domain::revocation::ModelRevoked;
use promotion_core::failure::Failure;
use promotion_core::ports::ModelRegistry as _;
use serde_json::{json, Value};

/// Operate the model promotion service.
#[derive(Parser)]
#[command(name = "promote", version, after_help = exit::EXIT_CODES)]
struct Cli {
    /// text: concise lines and tables with short names; wide: every column, full ARNs; json: the full record
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Logs on stderr: -v info, -vv debug (otherwise warnings only, or RUST_LOG when set)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a function's handler in-process on an event file, against the AWS the environment
    /// names (replays a dead-lettered event; a Lambda destination record is replayed as the
    /// `requestPayload` it wraps). Says what it did; -o json prints the outcome as JSON.
    Invoke {
        #[arg(value_parser = ["promote-model", "start-deployment", "deploy-model", "test-model", "record-outcome"])]
        function: String,
        #[arg(long)]
        event: PathBuf,
    },
    /// What runs where now, per model: dev version, central version and its approval, the version
    /// the test and prod endpoints serve (read live from the registries and the endpoints).
    Status {
        /// Same as -o json.
        #[arg(long)]
        json: bool,
        /// Every promoted version as the ledger records it, instead of one line per model.
        #[arg(long)]
        versions: bool,
    },
    /// Approve the version of MODEL (a central group) that waits for the prod approval.
    Approve(Decision),
    /// Reject the version of MODEL that waits for the prod approval.
    Reject(Decision),
    /// Redeploy the version a stage ran before its latest deployment. Reaches the stage account
    /// through its `model-promotion-operator-rollback` role (OPERATOR_ROLLBACK_ROLE_NAME
    /// overrides the name), which may only point `promoted-*` endpoints at existing `promoted-*`
    /// endpoint configs: an endpoint that failed or is gone is not rolled back but redeployed
    /// through the pipeline.
    Rollback {
        model: String,
        #[arg(long)]
        stage: Stage,
    },
    /// The ordered audit trail of every version of MODEL (a central group).
    History {
        model: String,
        /// Same as -o json.
        #[arg(long)]
        json: bool,
    },
    /// The append-only audit trail: one hash chain per model.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The local AWS emulator.
    Local {
        #[command(subcommand)]
        command: LocalCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk MODEL's audit chain (a central group), or every model's, from its first entry to its
    /// head; exit 1 naming the model, the seq and what is wrong when an entry was rewritten,
    /// removed or moved.
    Verify { model: Option<String> },
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
    /// state-change event EventBridge forwards to the central account (and, with --call-out, the
    /// CloudTrail record of the call, which names who made it, forwarded by the same rule).
    Decide {
        #[arg(long, env = "DEV_MODEL_PACKAGE_ARN")]
        package: String,
        #[arg(long)]
        reject: bool,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        call_out: Option<PathBuf>,
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
    let cli = Cli::parse();
    ui::init_logs(cli.verbose);
    let json_flag = matches!(cli.command, Command::Status { json: true, .. } | Command::History { json: true, .. });
    ui::set_output(if json_flag { Output::Json } else { cli.output });
    match run(cli.command).await {
        Ok(code) => code,
        Err(error) => exit::report(&error),
    }
}

async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Invoke { function, event } => invoke(&function, &event).await,
        Command::Status { versions, .. } => status_command(versions).await,
        Command::Approve(decision) => decide(decision, true).await,
        Command::Reject(decision) => decide(decision, false).await,
        Command::Rollback { model, stage } => {
            let model: GroupName = model.parse()?;
            let DeployContext { mut ports, config, operator, local: _served } = deploy_context().await?;
            let role = rollback_role(|name| std::env::var(name).ok());
            ports.stages = Arc::new(RollbackSessions::new(load_sdk_config().await, role, operator.clone()));
            let waiting = ui::waiting(format!("rolling the {stage} endpoint of {model} back"));
            let restored = rollback::roll_back(&ports, &config, &model, stage).await.map_err(exit::failure)?;
            drop(waiting);
            match ui::output() {
                Output::Json => ui::say(serde_json::to_string_pretty(&restored)?),
                Output::Wide => ui::say(format!(
                    "{} {stage} runs {} again (config {}), rolled back by {}",
                    restored.endpoint, restored.package, restored.config, operator.arn
                )),
                Output::Text => ui::say(format!("rolled back: the {stage} endpoint of {model} serves v{} again", restored.package.version())),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::History { model, .. } => {
            let model: GroupName = model.parse()?;
            let DeployContext { ports, local: _served, .. } = deploy_context().await?;
            let entries = trail::history(ports.audit.as_ref(), &model).await?;
            match ui::output() {
                Output::Json => ui::say(serde_json::to_string_pretty(&entries)?),
                _ if entries.is_empty() => ui::say(format!("no history of {model}: `promote status` lists the models")),
                output => ui::say(history::render(&model, &entries, output == Output::Wide, ui::fit(output)).trim_end()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { command: AuditCommand::Verify { model } } => {
            let model: Option<GroupName> = model.map(|m| m.parse()).transpose()?;
            let DeployContext { ports, .. } = deploy_context().await?;
            let waiting = ui::waiting("walking the audit chains");
            let (reports, exit) = audit::verify(ports.audit.as_ref(), model.as_ref()).await?;
            drop(waiting);
            match ui::output() {
                Output::Json => ui::say(serde_json::to_string_pretty(&reports)?),
                output => ui::say(audit::render(&reports, output == Output::Wide, ui::fit(output)).trim_end()),
            }
            Ok(exit.into())
        }
        Command::Local { command: LocalCommand::Pipeline { package, approve, reject, comment } } => {
            local_pipeline(&package, (approve || reject).then_some((approve, comment))).await
        }
        Command::Local { command: LocalCommand::Replies { account, bodies } } => {
            let endpoint = exit::env_var("AWS_ENDPOINT_URL")?;
            let results: Vec<Value> = bodies.iter().map(|b| json!({ "Body": b, "ContentType": "text/csv" })).collect();
            local::queue_endpoint_results(&endpoint, &account, &results).await?;
            ui::say(format!("the endpoints of account {account} will answer: {}", bodies.join(" | ")));
            Ok(ExitCode::SUCCESS)
        }
        Command::Local { command: LocalCommand::Provision { endpoint } } => {
            let world = local::provision(&endpoint, local::Names::with_suffix(""), CopySettings::default()).await?;
            for pushed in &world.serving_images {
                eprintln!("dev ECR: pushed {} ({})", pushed.image, pushed.digest);
                let central = pushed.replicated.as_deref().unwrap_or("refused by an immutable tag");
                eprintln!("  ECR replication, played by the local world (moto replicates nothing): central {} at {central}", pushed.repository);
            }
            print!("{}", world.env_file().await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Local { command: LocalCommand::Decide { package, reject, out, call_out } } => {
            let package: ModelPackageArn = package.parse()?;
            let sdk = load_sdk_config().await;
            let scientist = local::DATA_SCIENTIST;
            let dev = local::session_of(&sdk, scientist).await?;
            let status = if reject { "Rejected" } else { "Approved" };
            local::set_dev_approval(&dev, &package, !reject).await?;
            let event = local::approval_event(&package, status);
            std::fs::write(&out, serde_json::to_vec_pretty(&event)?).with_context(|| format!("write {}", out.display()))?;
            if let Some(call_out) = call_out {
                let call = local::approval_call_event(&dev, Some(scientist.name), &package, status).await?;
                std::fs::write(&call_out, serde_json::to_vec_pretty(&call)?).with_context(|| format!("write {}", call_out.display()))?;
            }
            let version = if ui::output() == Output::Text { format!("dev {}", ui::short(&package)) } else { package.to_string() };
            ui::say(format!("{} {version} in the dev registry; the forwarded event is in {}", if reject { "rejected" } else { "approved" }, out.display()));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `promote status`: the live view per model, or the ledger's versions.
async fn status_command(versions: bool) -> Result<ExitCode> {
    let stage_config = StageConfig::parse(&exit::env_var("STAGE_CONFIG")?)?;
    let (ledger_table, audit_table) = (exit::env_var("LEDGER_TABLE")?, exit::env_var("AUDIT_TABLE")?);
    let central_account: AccountId = exit::env_var("CENTRAL_ACCOUNT_ID")?.parse()?;
    let sdk = load_sdk_config().await;
    let ledger = promotion_aws::wiring::ledger(&sdk, &ledger_table, &audit_table, &central_account);
    let central = SageMakerRegistry::new(aws_sdk_sagemaker::Client::new(&sdk));
    let waiting = ui::waiting("reading the registries and the endpoints");
    if versions {
        let rows = status::status(&ledger, &central, &stage_config).await?;
        drop(waiting);
        match ui::output() {
            Output::Json => ui::say(serde_json::to_string_pretty(&rows)?),
            _ => ui::say(status::render(&rows).trim_end()),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let source_role = std::env::var("SOURCE_READ_ROLE_NAME").unwrap_or_else(|_| DEFAULT_SOURCE_READ_ROLE.to_owned());
    let (sources, stages) = (SourceRegistries::new(sdk.clone(), &source_role), RoleSessions::new(sdk.clone()));
    let live = status::Live { ledger: &ledger, central: &central, sources: &sources, stages: &stages, stage_config: &stage_config };
    let models = status::models(&live).await?;
    drop(waiting);
    for problem in status::unreadable(&models) {
        anstream::eprintln!("{} {problem}", ui::paint(ui::WARN, "warning:"));
    }
    match ui::output() {
        Output::Json => ui::say(serde_json::to_string_pretty(&models)?),
        _ if models.is_empty() => ui::say("no model promoted yet"),
        output => ui::say(status::render_models(&models, output == Output::Wide, Utc::now(), ui::fit(output)).trim_end()),
    }
    Ok(ExitCode::SUCCESS)
}

/// The deploy ports and their configuration, as the functions wire them from the environment, for
/// the operator at the terminal.
struct DeployContext {
    ports: DeployPorts,
    config: DeployConfig,
    /// Who STS says runs the command: the sessions it assumes and the entries it writes name them.
    operator: Operator,
    /// With `PROMOTE_LOCAL_PIPELINE` set (by `make local-up`), the local pipeline world in that
    /// file: served while this lives, the ports' CodePipeline client pointed at it.
    local: Option<LocalCodePipeline>,
}

async fn deploy_context() -> Result<DeployContext> {
    let config = DeployConfig::from_env()?;
    let sdk = load_sdk_config().await;
    let operator = promotion_aws::sts::operator(&sdk).await.context("who is the operator (STS GetCallerIdentity)")?;
    let mut ports = operator_deploy_ports(&sdk, &config, &operator);
    let local = match std::env::var_os("PROMOTE_LOCAL_PIPELINE").filter(|state| !state.is_empty()) {
        Some(state) => {
            let world = PipelineWorld::open(PathBuf::from(state), definition()?);
            world.called_by(&operator.arn);
            let served = LocalCodePipeline::serve(world).await.context("serve the local pipeline")?;
            served.wire(&mut ports, &sdk);
            Some(served)
        }
        None => None,
    };
    Ok(DeployContext { ports, config, operator, local })
}

fn definition() -> Result<PipelineDefinition> {
    PipelineDefinition::load(Path::new("infra/pipeline.json"))
}

async fn decide(decision: Decision, approve: bool) -> Result<ExitCode> {
    if decision.stage != Stage::Prod {
        return Err(exit::failed(Exit::Usage, format!("the {} stage waits for no approval", decision.stage), "only prod does: --stage prod"));
    }
    let model: GroupName = decision.model.parse()?;
    let DeployContext { ports, config, local, operator } = deploy_context().await?;
    let full = ui::output() == Output::Wide;
    let decided = (&model, approve, decision.comment.as_str());
    let answered = governance::decide_prod_as(&ports, &config, decided, &operator.arn, &mut Screen::default(), full).await?;
    if let Some(local) = &local {
        let pipeline = LocalPipeline { ports: &ports, config: &config, world: &local.world };
        let reached = pipeline.resume(&answered.execution_id).await?;
        return Ok(ended(&answered.execution_id, reached));
    }
    Ok(ExitCode::SUCCESS)
}

/// stdout through [`ui::say`], a whole line at a time.
#[derive(Default)]
struct Screen(String);

impl std::io::Write for Screen {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.push_str(&String::from_utf8_lossy(bytes));
        while let Some(end) = self.0.find('\n') {
            ui::say(&self.0[..end]);
            self.0.drain(..=end);
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The pipeline's last line, and the exit code a failed execution ends with.
fn ended(execution_id: &str, reached: Reached) -> ExitCode {
    let painted = match reached {
        Reached::Succeeded => ui::paint(ui::GOOD, reached),
        Reached::Failed => ui::paint(ui::BAD, reached),
        Reached::Stopped | Reached::WaitingForApproval => ui::paint(ui::WARN, reached),
    };
    ui::say(format!("pipeline {execution_id}: {painted}"));
    if reached == Reached::Failed {
        Exit::Refused.into()
    } else {
        ExitCode::SUCCESS
    }
}

/// What an ML engineer's approval of the central version sets off, with the pipeline run locally.
async fn local_pipeline(package: &str, decision: Option<(bool, String)>) -> Result<ExitCode> {
    let package: ModelPackageArn = package.parse()?;
    let DeployContext { ports, config, local, operator } = deploy_context().await?;
    let local = local.ok_or_else(|| exit::unset("PROMOTE_LOCAL_PIPELINE"))?;
    // The ML engineer approves in their own session; the central account's default bus sends both
    // of the approval's events to start-deployment, CloudTrail's naming who approved.
    let engineer = local::session_of(&load_sdk_config().await, local::ML_ENGINEER).await?;
    let registry = SageMakerRegistry::new(aws_sdk_sagemaker::Client::new(&engineer));
    let central = registry.describe_package(&package).await?;
    registry.set_approval(&central, ApprovalStatus::Approved, "approved by the ML engineer (local demo)", &[]).await?;
    let call = local::approval_call_event(&engineer, Some(local::ML_ENGINEER.name), &package, "Approved").await?;
    start_deployment::approver(&ports, &config, LambdaEvent::new(call, Context::default())).await.map_err(exit::failure)?;
    let mut context = Context::default();
    context.deadline = u64::try_from((Utc::now() + chrono::Duration::minutes(1)).timestamp_millis())?;
    let event = local::approval_event(&package, "Approved");
    let started = start_deployment::handler(&ports, &config, LambdaEvent::new(event, context)).await.map_err(exit::failure)?;
    match ui::output() {
        Output::Text => ui::say(format!("approved {} centrally: {}", ui::short(&package), replay::describe(&serde_json::to_value(&started)?))),
        _ => ui::say(serde_json::to_string(&started)?),
    }
    let (StartOutcome::Started { execution_id, .. } | StartOutcome::AlreadyStarted { execution_id, .. }) = started else {
        return Err(exit::failed(Exit::Refused, "the approval started no pipeline execution", "`promote history MODEL` shows why"));
    };
    let pipeline = LocalPipeline { ports: &ports, config: &config, world: &local.world };
    let mut reached = pipeline.resume(&execution_id).await?;
    if let (Some((approve, comment)), Reached::WaitingForApproval) = (decision, reached) {
        let full = ui::output() == Output::Wide;
        governance::decide_prod_as(&ports, &config, (package.group(), approve, &comment), &operator.arn, &mut Screen::default(), full).await?;
        reached = pipeline.resume(&execution_id).await?;
    }
    Ok(ended(&execution_id, reached))
}

/// Runs a function's handler in-process, as Lambda would, and says what it did.
async fn invoke(function: &str, path: &Path) -> Result<ExitCode> {
    let raw = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let payload: Value =
        serde_json::from_slice(&raw).map_err(|e| exit::failed(Exit::Usage, format!("{} is not JSON: {e}", path.display()), "give an event file"))?;
    // A dead-lettered record of Lambda's on-failure destination is replayed as the event it wraps.
    let payload = replay::lambda_event(payload);
    let mut context = Context::default();
    context.request_id = format!("cli-{}", uuid::Uuid::new_v4());
    context.deadline = u64::try_from((Utc::now() + chrono::Duration::minutes(15)).timestamp_millis())?;
    let event = LambdaEvent::new(payload, context);
    let waiting = ui::waiting(format!("{function} handles the event"));
    let answer = if function == "promote-model" {
        let config = PromoteConfig::from_env()?;
        let sdk = load_sdk_config().await;
        let operator = promotion_aws::sts::operator(&sdk).await.context("who is the operator (STS GetCallerIdentity)")?;
        let ports = operator_promote_ports(&sdk, &config, &operator);
        if ApprovalCall::is_one(&event.payload) {
            answer(promote_model::approver(&ports, &config, event).await.map_err(failed))
        } else {
            answer(promote_model::handler(&ports, &config, event).await.map_err(failed))
        }
    } else {
        let DeployContext { ports, config, local: _served, .. } = deploy_context().await?;
        match function {
            "start-deployment" if ApprovalCall::is_one(&event.payload) => answer(start_deployment::approver(&ports, &config, event).await.map_err(failed)),
            "start-deployment" => answer(start_deployment::handler(&ports, &config, event).await.map_err(failed)),
            "deploy-model" => answer(deploy_model::handler(&ports, &config, event).await.map_err(failed)),
            "test-model" => answer(test_model::handler(&ports, &config, event).await.map_err(failed)),
            _ if ModelRevoked::is_one(&event.payload) => answer(record_outcome::revocation(&ports, &config, event).await.map_err(failed)),
            _ => answer(record_outcome::handler(&ports, &config, event).await.map_err(failed)),
        }
    };
    drop(waiting);
    let (code, report) = answer?;
    match ui::output() {
        Output::Text if code != Exit::Ok => {
            let cause = format!("{} ({})", report["error_message"].as_str().unwrap_or_default(), report["error_type"].as_str().unwrap_or_default());
            let hint = if code == Exit::Aws { "a redelivery can succeed: run it again" } else { "fix the cause, then replay the event with promote invoke" };
            return Err(exit::failed(code, ui::shorten(&cause), hint));
        }
        Output::Text => ui::say(replay::describe(&report)),
        _ => ui::say(serde_json::to_string_pretty(&report)?),
    }
    Ok(code.into())
}

/// A refusal as a replay shows it: its errorType and message.
fn failed(error: impl Failure) -> (String, String) {
    (error.error_type(), error.to_string())
}

/// The outcome, or the typed error with its exit code (how a replay tells it was refused, or
/// that a redelivery can succeed).
fn answer<T: serde::Serialize>(result: Result<T, (String, String)>) -> Result<(Exit, Value)> {
    Ok(match result {
        Ok(outcome) => (Exit::Ok, serde_json::to_value(outcome)?),
        Err((error_type, error_message)) => {
            let exit = if error_type.starts_with("Retryable.") { Exit::Aws } else { Exit::Refused };
            (exit, json!({ "error_type": error_type, "error_message": error_message }))
        }
    })
}
