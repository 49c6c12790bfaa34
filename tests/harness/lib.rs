//! The test harness: one moto server per test binary, started here, and for each test a world
//! of its own (its own buckets, table, bus and dev group) provisioned as `make demo` does.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use aws_config::SdkConfig;
use lambda_runtime::{Context, LambdaEvent};
use promote_cli::local::{self, Names, World};
use promotion_aws::wiring::promote_ports;
use promotion_core::domain::copy::CopySettings;
use promotion_core::domain::ids::ModelPackageArn;
use promotion_core::ports::PromotePorts;
use promotion_core::promotion::{Outcome, PromoteError};
use serde_json::Value;

/// The address of this test binary's moto server, started on first use and stopped with the
/// binary (the kernel signals it when the thread that started it ends, and that thread never does).
pub fn moto_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| start_moto().expect("moto server starts (run `make venv` first)"))
}

fn moto_binary() -> PathBuf {
    std::env::var_os("MOTO_SERVER").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server"))
}

fn start_moto() -> Result<String> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let binary = moto_binary();
    anyhow::ensure!(binary.exists(), "{} is missing", binary.display());
    let (started, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut command = Command::new(binary);
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]).stdout(Stdio::null()).stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        match command.spawn() {
            Ok(mut child) => {
                started.send(Ok(())).ok();
                child.wait().ok();
            }
            Err(error) => {
                started.send(Err(error)).ok();
            }
        }
    });
    ready.recv()?.context("spawn moto_server")?;
    let endpoint = format!("http://127.0.0.1:{port}");
    wait_until_ready(port)?;
    Ok(endpoint)
}

fn wait_until_ready(port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let mut reply = String::new();
            let asked = stream.write_all(b"POST /moto-api/reset HTTP/1.0\r\nContent-Length: 0\r\n\r\n").is_ok();
            if asked && stream.read_to_string(&mut reply).is_ok() && reply.starts_with("HTTP/1.") && reply.contains(" 200 ") {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("moto server on port {port} did not answer within 60 s")
}

/// Every test of a binary shares the emulator (a read guard), except those that compare
/// account-wide listings (groups, cards), which need it alone (the write guard).
pub static EMULATOR: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// A test's own world on the shared emulator.
pub struct TestWorld {
    pub world: World,
    pub ports: PromotePorts,
    /// The ledger table in all its roles, for what reads across them (the CLI's status).
    pub ledger: std::sync::Arc<promotion_aws::dynamodb::DynamoLedger>,
}

impl TestWorld {
    /// The deployment functions' configuration in this world, as the template sets their
    /// environment, with the demo's stage settings.
    pub fn deploy_config(&self) -> promotion_core::deployment::DeployConfig {
        let env = [
            ("CENTRAL_ACCOUNT_ID", "222222222222".to_owned()),
            ("STAGE_CONFIG", promotion_core::config::LOCAL_STAGE_CONFIG.to_owned()),
            ("ARTIFACT_BUCKET", self.world.config.artifact_bucket.clone()),
            ("ARTIFACT_KMS_KEY_ID", self.world.config.kms_key_id.clone()),
            ("LEDGER_TABLE", self.world.config.ledger_table.clone()),
            ("AUDIT_TABLE", self.world.config.audit_table.clone()),
            ("PIPELINE_NAME", local::service_names().pipeline.clone()),
            ("APPROVAL_TOPIC_ARN", self.world.approval_topic_arn.clone()),
            ("EVIDENCE_BUCKET", self.world.names.evidence_bucket.clone()),
            ("EVIDENCE_RETENTION_DAYS", local::LOCAL_EVIDENCE_RETENTION_DAYS.to_string()),
            // These worlds approve through the SDK's default session, recording no approver from
            // CloudTrail (tests/it/forwarding.rs runs that path): the four-eyes gate, which would
            // refuse them all as unknown, is proved over the fakes (deployment::gate's tests).
            ("SEPARATION_OF_DUTIES", "off".to_owned()),
        ];
        promotion_core::deployment::DeployConfig::from_lookup(|name| env.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()))
            .expect("the test world's deployment configuration")
    }

    pub async fn new() -> Self {
        Self::with_copy_settings(CopySettings::default()).await
    }

    pub async fn with_copy_settings(copy: CopySettings) -> Self {
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        let world = local::provision(moto_endpoint(), Names::with_suffix(&suffix), copy).await.expect("provision");
        let ports = promote_ports(&world.central, &world.config);
        let config = &world.config;
        let ledger = std::sync::Arc::new(promotion_aws::wiring::ledger(&world.central, &config.ledger_table, &config.audit_table, &config.central_account));
        Self { world, ports, ledger }
    }

    pub fn central(&self) -> &SdkConfig {
        &self.world.central
    }

    pub fn dev(&self) -> &SdkConfig {
        &self.world.dev
    }

    /// Approves (or rejects) `package` in dev and returns the event EventBridge would forward.
    pub async fn decide(&self, package: &ModelPackageArn, approved: bool) -> Value {
        local::set_dev_approval(self.dev(), package, approved).await.expect("dev decision");
        local::approval_event(package, if approved { "Approved" } else { "Rejected" })
    }

    pub async fn deliver(&self, event: &Value) -> Result<Outcome, PromoteError> {
        self.deliver_with(&self.ports, event).await
    }

    pub async fn deliver_with(&self, ports: &PromotePorts, event: &Value) -> Result<Outcome, PromoteError> {
        promote_model::handler(ports, &self.world.config, lambda_event(event.clone())).await
    }
}

pub fn lambda_event(payload: Value) -> LambdaEvent<Value> {
    let mut context = Context::default();
    context.request_id = uuid::Uuid::new_v4().to_string();
    context.deadline = u64::try_from((chrono::Utc::now() + chrono::Duration::minutes(5)).timestamp_millis()).expect("positive");
    LambdaEvent::new(payload, context)
}

pub mod chaos;
pub mod faults;
pub mod inspect;
