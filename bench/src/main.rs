//! `make bench`: measures the service on this machine against moto's server on loopback and
//! writes docs/benchmarks.md. Never part of `make test`.

mod http;
mod runtime_api;

use promotion_core::failure::Failure;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use aws_config::SdkConfig;
use aws_sdk_sagemaker::types::{InferenceSpecification, ModelApprovalStatus, ModelPackageContainerDefinition};
use futures::StreamExt;
use lambda_runtime::{Context, LambdaEvent};
use promote_cli::local::{put_object, register_version};
use promotion_core::config::PromoteConfig;
use promotion_core::domain::copy::CopySettings;
use promotion_core::domain::ids::ModelPackageArn;
use promotion_core::domain::naming::{central_description, central_group_name};
use promotion_core::ports::PromotePorts;
use promotion_core::promotion::{Outcome, PromoteError};
use promotion_tests::chaos::Chaos;
use promotion_tests::TestWorld;
use serde_json::Value;

use http::{CountingClient, RequestLog};
use runtime_api::RuntimeApi;

const MIB: u64 = 1024 * 1024;
const FUNCTIONS: [&str; 5] = ["promote-model", "start-deployment", "deploy-model", "test-model", "record-outcome"];

struct Args {
    out: PathBuf,
    bin_dir: PathBuf,
    criterion_dir: PathBuf,
    command: String,
    runs: usize,
    copy_mib: u64,
    many_parts_mib: u64,
    burst: usize,
    concurrency: usize,
    sizes: Vec<usize>,
    only: Option<Vec<String>>,
}

fn args() -> Result<Args> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = Args {
        out: root.join("docs/benchmarks.md"),
        bin_dir: root.join("target/release"),
        criterion_dir: root.join("target/criterion"),
        command: "make bench".into(),
        runs: 5,
        copy_mib: 1024,
        many_parts_mib: 256,
        burst: 500,
        concurrency: 16,
        sizes: vec![1, 100, 1000],
        only: None,
    };
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        let mut value = || raw.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => args.out = value()?.into(),
            "--bin-dir" => args.bin_dir = value()?.into(),
            "--criterion-dir" => args.criterion_dir = value()?.into(),
            "--command" => args.command = value()?,
            "--runs" => args.runs = value()?.parse()?,
            "--copy-mib" => args.copy_mib = value()?.parse()?,
            "--many-parts-mib" => args.many_parts_mib = value()?.parse()?,
            "--burst" => args.burst = value()?.parse()?,
            "--concurrency" => args.concurrency = value()?.parse()?,
            "--sizes" => args.sizes = value()?.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--only" => args.only = Some(value()?.split(',').map(str::to_owned).collect()),
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = args()?;
    let wanted = |name: &str| args.only.as_ref().is_none_or(|only| only.iter().any(|o| o == name));
    let endpoint = promotion_tests::moto_endpoint();
    eprintln!("moto on {endpoint}");
    let mut sections = Vec::new();
    let mut run = |name: &str, title: &str, result: Result<String>| {
        let body = result.unwrap_or_else(|error| format!("**Could not be measured:** {error:#}\n"));
        eprintln!("== {title}\n{body}");
        sections.push(format!("## {title}\n\n{body}"));
        let _ = name;
    };
    if wanted("cold") {
        run("cold", "1. Cold start and peak memory of the release binaries", cold_starts(&args).await);
    }
    if wanted("growth") {
        run("growth", "2. Promotion cost as the central group grows", growth(&args).await);
    }
    if wanted("copy") {
        run("copy", "3. Artifact copy: CopyObject against parallel UploadPartCopy", copies(&args).await);
    }
    if wanted("burst") {
        run("burst", "4. Burst: distinct approvals and duplicate deliveries", burst(&args).await);
    }
    if wanted("parse") {
        run("parse", "5. Event parsing and validation (criterion)", criterion(&args));
    }
    let report = format!("{}\n{}", header(&args)?, sections.join("\n"));
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, report)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The report's header: machine and versions

fn header(args: &Args) -> Result<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo.lines().find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned()));
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:")).map(|m| m.trim().to_owned());
    let rustc = output("rustc", &["--version"]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    let moto = output(python.to_str().unwrap_or("python3"), &["-c", "import moto; print(moto.__version__)"]);
    let kernel = output("uname", &["-sr"]);
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mut text = String::new();
    writeln!(text, "# Benchmarks")?;
    writeln!(text)?;
    writeln!(text, "Generated by `{}` (bench/, `promotion-bench`); every figure is from that one run on this machine,", args.command)?;
    writeln!(text, "against moto's server on loopback (the local AWS). moto is a single Python process: its")?;
    writeln!(text, "latencies, not the service's, dominate most figures, and real AWS differs (see the notes of each part).")?;
    writeln!(text)?;
    writeln!(text, "| | |\n|---|---|")?;
    writeln!(text, "| date (UTC) | {} |", chrono::Utc::now().format("%Y-%m-%d %H:%M"))?;
    writeln!(text, "| command | `{}` |", args.command)?;
    writeln!(text, "| CPU | {} |", cpu.unwrap_or_else(|| "?".into()))?;
    writeln!(text, "| cores (nproc) | {nproc} |")?;
    writeln!(text, "| memory | {} |", memory.unwrap_or_else(|| "?".into()))?;
    writeln!(text, "| kernel | {kernel} |")?;
    writeln!(text, "| rustc | {rustc} |")?;
    writeln!(text, "| moto | {moto} |")?;
    writeln!(text, "| commit | {} |", commit())?;
    writeln!(text, "| release profile | {} (root Cargo.toml) |", release_profile())?;
    Ok(text)
}

/// The commit measured, and whether the work tree differed from it.
fn commit() -> String {
    let head = output("git", &["rev-parse", "--short=12", "HEAD"]);
    let dirty = !output("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    if dirty {
        format!("{head} with uncommitted changes")
    } else {
        head
    }
}

/// The `[profile.release]` settings of the workspace, as the build used them.
fn release_profile() -> String {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml")).unwrap_or_default();
    let settings: Vec<&str> = manifest
        .lines()
        .skip_while(|line| line.trim() != "[profile.release]")
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    if settings.is_empty() {
        "the default".into()
    } else {
        settings.join(", ")
    }
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".into())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    if values.is_empty() {
        return f64::NAN;
    }
    values[values.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------------
// Worlds, counted ports, deliveries

/// The world's central configuration with an HTTP client that counts requests.
fn counted(world: &TestWorld) -> (SdkConfig, RequestLog) {
    let log = RequestLog::default();
    let sdk = world.central().to_builder().http_client(CountingClient::new(log.clone())).build();
    (sdk, log)
}

async fn deliver(ports: &PromotePorts, config: &PromoteConfig, event: &Value) -> Result<Outcome, PromoteError> {
    let mut context = Context::default();
    context.request_id = uuid::Uuid::new_v4().to_string();
    context.deadline = (chrono::Utc::now() + chrono::Duration::minutes(15)).timestamp_millis() as u64;
    promote_model::handler(ports, config, LambdaEvent::new(event.clone(), context)).await
}

/// The artifacts of the world's trained dev version, to register more versions naming them.
fn dev_artifacts(world: &TestWorld) -> (String, String, String) {
    let prefix = format!("s3://{}/{}/pipelines-7f3k/output", world.world.names.dev_bucket, world.world.names.dev_group);
    (format!("{prefix}/model.tar.gz"), format!("{prefix}/evaluation/evaluation.json"), format!("{prefix}/baseline/constraints.json"))
}

async fn new_dev_version(world: &TestWorld, group: &str, model: &str, reports: Option<(&str, &str)>) -> Result<(ModelPackageArn, Value)> {
    let arn = register_version(world.dev(), group, model, reports).await?;
    let event = world.decide(&arn, true).await;
    Ok((arn, event))
}

fn moto_pid() -> Option<i32> {
    let port = promotion_tests::moto_endpoint().rsplit(':').next()?.to_owned();
    std::fs::read_dir("/proc").ok()?.filter_map(Result::ok).find_map(|entry| {
        let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        (args.iter().any(|a| a.contains("moto_server")) && args.iter().any(|a| *a == port)).then_some(pid)
    })
}

fn status_kib(pid: i32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn mem_available() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo.lines().find_map(|l| l.strip_prefix("MemAvailable:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()).unwrap_or(0) * 1024
}

// ---------------------------------------------------------------------------------------------
// 1. Cold start and peak RSS

struct ColdRun {
    init: Duration,
    first_answer: Option<Duration>,
    kind: String,
    hwm_kib: u64,
}

fn env_of(world_env: &str) -> Vec<(String, String)> {
    world_env
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect()
}

fn cold_run(binary: &Path, env: &[(String, String)], event: &[u8], function: &str) -> Result<ColdRun> {
    let arn = format!("arn:aws:lambda:us-east-1:222222222222:function:{function}");
    let api = RuntimeApi::serve(event.to_vec(), arn, 900_000)?;
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", &api.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("spawn {}", binary.display()))?;
    let pid = i32::try_from(child.id())?;
    let answered = api.wait_answer(Duration::from_secs(120));
    let recorded = api.recorded();
    let hwm_kib = status_kib(pid, "VmHWM:").unwrap_or(0);
    child.kill().ok();
    child.wait().ok();
    let init = recorded.first_next.map(|t| t - started).context("the runtime never asked for an event")?;
    Ok(ColdRun {
        init,
        first_answer: answered.then(|| recorded.answered.map(|t| t - started)).flatten(),
        kind: match recorded.kind.as_deref() {
            Some("response") => "response".into(),
            Some(kind) => {
                let body: Value = serde_json::from_slice(&recorded.body).unwrap_or(Value::Null);
                format!("{kind}: {}", body["errorType"].as_str().unwrap_or("?"))
            }
            None => "no answer".into(),
        },
        hwm_kib,
    })
}

async fn cold_starts(args: &Args) -> Result<String> {
    let world = TestWorld::new().await;
    let mut env = env_of(&world.world.env_file().await?);
    env.retain(|(k, _)| k != "PROMOTE_LOCAL_PIPELINE");
    let (model, evaluation, constraints) = dev_artifacts(&world);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |name: &str| std::fs::read(root.join("events").join(name));
    let mut text = String::new();
    writeln!(text, "Each release binary (`cargo build --release -p <function>`) is started against a Runtime API served by")?;
    writeln!(text, "the bench on 127.0.0.1 with the environment of a provisioned local world. **init** is the time from")?;
    writeln!(text, "spawn to the runtime's first `GET /2018-06-01/runtime/invocation/next` (config read, SDK clients built);")?;
    writeln!(text, "**first answer** from spawn to its `POST …/response` (or `…/error`) for one event. Peak RSS is `VmHWM`")?;
    writeln!(
        text,
        "of the process just before it is killed (`ru_maxrss` from `wait4` is no use here: a child spawned by vfork counts
its parent's pages until it execs). Median of {} runs;",
        args.runs
    )?;
    writeln!(text, "promote-model gets a new approved dev version each run (a ~3 MB model, an evaluation report and a baseline), so")?;
    writeln!(text, "every run is a full promotion against moto. The other functions get their reference event from events/, which names")?;
    writeln!(text, "a central version, job or execution this world does not hold (and moto lacks the CodePipeline job calls), so their")?;
    writeln!(text, "first answer is the typed error they report (shown), reached with `AWS_MAX_ATTEMPTS=1` so that SDK back-off does")?;
    writeln!(text, "not pad it: their init and memory figures are whole, their first answer is a lower bound.\n")?;
    writeln!(
        text,
        "| function | binary | init (median) | init (min–max) | first answer (median) | answer | peak RSS VmHWM (median) | init < 50 ms | RSS < 40 MB |"
    )?;
    writeln!(text, "|---|---|---|---|---|---|---|---|---|")?;
    for function in FUNCTIONS {
        let binary = args.bin_dir.join(function);
        if !binary.exists() {
            writeln!(text, "| {function} | missing: `{}` | | | | | | | |", binary.display())?;
            continue;
        }
        let size = std::fs::metadata(&binary)?.len();
        let mut runs = Vec::new();
        for _ in 0..args.runs {
            let (event, env) = if function == "promote-model" {
                let (_, event) = new_dev_version(&world, &world.world.names.dev_group, &model, Some((&evaluation, &constraints))).await?;
                (serde_json::to_vec(&event)?, env.clone())
            } else {
                let name = match function {
                    "start-deployment" => "sagemaker-central-approval.json",
                    "deploy-model" => "codepipeline-job-deploy-test.json",
                    "test-model" => "codepipeline-job-test-model.json",
                    _ => "codepipeline-approval-succeeded.json",
                };
                let mut env = env.clone();
                env.retain(|(k, _)| k != "AWS_MAX_ATTEMPTS");
                env.push(("AWS_MAX_ATTEMPTS".into(), "1".into()));
                (read(name)?, env)
            };
            let binary = binary.clone();
            let function = function.to_owned();
            runs.push(tokio::task::spawn_blocking(move || cold_run(&binary, &env, &event, &function)).await??);
        }
        let mut inits: Vec<f64> = runs.iter().map(|r| ms(r.init)).collect();
        let mut answers: Vec<f64> = runs.iter().filter_map(|r| r.first_answer.map(ms)).collect();
        let mut hwm: Vec<f64> = runs.iter().map(|r| r.hwm_kib as f64 / 1024.0).collect();
        let (min, max) = (inits.iter().copied().fold(f64::MAX, f64::min), inits.iter().copied().fold(0.0, f64::max));
        let kinds: Vec<String> = {
            let mut k: Vec<String> = runs.iter().map(|r| r.kind.clone()).collect();
            k.dedup();
            k
        };
        let init = median(&mut inits);
        let rss = median(&mut hwm);
        let rss_verdict = if function == "promote-model" {
            if rss < 40.0 {
                "pass"
            } else {
                "**fail**"
            }
        } else {
            "(target is promote-model's)"
        };
        writeln!(
            text,
            "| {function} | {:.1} MB | {init:.1} ms | {min:.1}–{max:.1} ms | {:.0} ms | {} | {rss:.1} MiB | {} | {rss_verdict} |",
            size as f64 / 1e6,
            median(&mut answers),
            kinds.join(", "),
            if init < 50.0 { "pass" } else { "**fail**" },
        )?;
    }
    Ok(text)
}

// ---------------------------------------------------------------------------------------------
// 2. Promotion cost as the central group grows

async fn fill_group(world: &TestWorld, group: &str, versions: usize) -> Result<()> {
    let sagemaker = aws_sdk_sagemaker::Client::new(world.central());
    if sagemaker.describe_model_package_group().model_package_group_name(group).send().await.is_err() {
        sagemaker.create_model_package_group().model_package_group_name(group).send().await?;
    }
    let bucket = world.world.names.artifact_bucket.clone();
    let results: Vec<Result<()>> = futures::stream::iter(0..versions)
        .map(|i| {
            let (sagemaker, bucket, group) = (sagemaker.clone(), bucket.clone(), group.to_owned());
            async move {
                let container = ModelPackageContainerDefinition::builder()
                    .image("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1")
                    .model_data_url(format!("s3://{bucket}/filler/{i}/model.tar.gz"))
                    .build();
                sagemaker
                    .create_model_package()
                    .model_package_group_name(group)
                    .model_package_description(format!("filler version {i}"))
                    .model_approval_status(ModelApprovalStatus::PendingManualApproval)
                    .inference_specification(
                        InferenceSpecification::builder()
                            .containers(container)
                            .supported_content_types("text/csv")
                            .supported_response_mime_types("text/csv")
                            .build(),
                    )
                    .send()
                    .await?;
                Ok(())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect()
}

async fn growth(args: &Args) -> Result<String> {
    let mut text = String::new();
    writeln!(text, "A central group is first filled with N versions (created directly with the SDK), then one new dev")?;
    writeln!(text, "version is promoted into it, three times in a row. AWS calls are the HTTP requests the SDK sent")?;
    writeln!(text, "(retries included, counted by a wrapping HTTP client); port calls are the calls through the service's")?;
    writeln!(text, "ports. Time is the handler's wall-clock time against moto, median of the three.\n")?;
    writeln!(text, "| versions already in the group | promotion time (median) | AWS calls per promotion | port calls | calls by operation (last promotion) |")?;
    writeln!(text, "|---|---|---|---|---|")?;
    let mut counts = Vec::new();
    for &versions in &args.sizes {
        let world = TestWorld::new().await;
        let group = central_group_name(&world.world.dev_package);
        let filling = Instant::now();
        fill_group(&world, group.as_str(), versions).await?;
        eprintln!("filled {group} with {versions} versions in {:?}", filling.elapsed());
        let (sdk, log) = counted(&world);
        let base = promotion_aws::wiring::promote_ports(&sdk, &world.world.config);
        let (model, evaluation, constraints) = dev_artifacts(&world);
        let mut times = Vec::new();
        let mut calls = Vec::new();
        let mut ports_calls = Vec::new();
        let mut last = BTreeMap::new();
        for round in 0..3 {
            let (_, event) = if round == 0 {
                (world.world.dev_package.clone(), world.decide(&world.world.dev_package, true).await)
            } else {
                new_dev_version(&world, &world.world.names.dev_group, &model, Some((&evaluation, &constraints))).await?
            };
            let chaos = Chaos::counting();
            let ports = chaos.ports(&base);
            log.take();
            let started = Instant::now();
            let outcome = deliver(&ports, &world.world.config, &event).await?;
            times.push(ms(started.elapsed()));
            anyhow::ensure!(matches!(outcome, Outcome::Promoted(_)), "not promoted: {outcome:?}");
            let requests = log.take();
            calls.push(requests.len());
            ports_calls.push(chaos.calls().len());
            last = RequestLog::by_operation(&requests);
        }
        let summary: Vec<String> = last.iter().map(|(op, n)| format!("{op} {n}")).collect();
        writeln!(
            text,
            "| {versions} | {:.0} ms | {} | {} | {} |",
            median(&mut times),
            calls.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            ports_calls.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            summary.join(", ")
        )?;
        counts.push(calls[1..].to_vec());
    }
    let flat = counts.windows(2).all(|w| w[0] == w[1]);
    writeln!(text)?;
    writeln!(
        text,
        "Target: the number of calls does not grow with the group. **{}** (the first promotion of each row also assumes the dev account's read role, one STS call; its credentials are cached afterwards).",
        if flat { "pass" } else { "fail: the call count changes with the group size" }
    )?;
    writeln!(text, "No call lists the registry on the normal path: a duplicate is found by the ledger's conditional claim; `ListModelPackages` (newest 100 by creation time) is only asked when a takeover finds a registration in flight.")?;
    Ok(text)
}

// ---------------------------------------------------------------------------------------------
// 3. Artifact copy

async fn upload_big(world: &TestWorld, key: &str, size: u64) -> Result<String> {
    let bytes: Vec<u8> = (0..size).map(|i| (i.wrapping_mul(2_654_435_761) >> 17) as u8).collect();
    put_object(world.dev(), &world.world.names.dev_bucket, key, bytes).await
}

struct CopyCase {
    label: String,
    settings: CopySettings,
}

async fn copies(args: &Args) -> Result<String> {
    let world = TestWorld::new().await;
    let pid = moto_pid();
    let (sdk, log) = counted(&world);
    let base = promotion_aws::wiring::promote_ports(&sdk, &world.world.config);
    let mut text = String::new();
    writeln!(text, "One run on one moto server: a dev version naming only the artifact is promoted with each copy setting")?;
    writeln!(text, "(the whole handler runs: HEADs, claim, copy, verification, registration, card). MB/s is the artifact's size")?;
    writeln!(text, "over the handler's time; calls are the S3 copy requests sent. moto's peak RSS is sampled every 100 ms.\n")?;
    writeln!(text, "| artifact | copy | parts | concurrency | time | MB/s | S3 copy calls | all AWS calls | moto peak RSS |")?;
    writeln!(text, "|---|---|---|---|---|---|---|---|---|")?;
    let mut notes = Vec::new();
    let mut fastest: Vec<(String, f64)> = Vec::new();
    for (size_mib, part_mib, label) in [(args.copy_mib, 128, "large"), (args.many_parts_mib, 5, "many parts")] {
        let size = size_mib * MIB + 12_345;
        // moto holds the upload in memory next to the bench's own copy of the bytes.
        if mem_available() < 3 * size + 2 * 1024 * MIB {
            notes.push(format!("- {size_mib} MiB skipped: {:.1} GiB of memory available", mem_available() as f64 / (1024.0 * MIB as f64)));
            continue;
        }
        let uploading = Instant::now();
        let model = match upload_big(&world, &format!("bench/{label}/model.tar.gz"), size).await {
            Ok(model) => model,
            Err(error) => {
                notes.push(format!("- {size_mib} MiB could not be uploaded to moto: {error:#}"));
                continue;
            }
        };
        eprintln!("uploaded {size_mib} MiB in {:?}", uploading.elapsed());
        let parts = size.div_ceil(part_mib * MIB);
        let mut cases =
            vec![CopyCase { label: "CopyObject".into(), settings: CopySettings { multipart_threshold: u64::MAX, part_size: part_mib * MIB, concurrency: 1 } }];
        for concurrency in [1, 4, 16] {
            cases.push(CopyCase {
                label: "UploadPartCopy".into(),
                settings: CopySettings { multipart_threshold: 8 * MIB, part_size: part_mib * MIB, concurrency },
            });
        }
        for case in cases {
            let multipart = case.label == "UploadPartCopy";
            // moto reads the whole source object for every UploadPartCopy and keeps it while it
            // slices the part out: concurrent part copies cost a source's size each.
            let copies_at_once = if multipart { case.settings.concurrency.min(parts as usize) as u64 } else { 2 };
            let needed = (copies_at_once + 1) * size + 2 * 1024 * MIB;
            if mem_available() < needed {
                writeln!(
                    text,
                    "| {size_mib} MiB | {} | {} | {} | skipped: moto would need ~{:.1} GiB, {:.1} GiB available | | | | |",
                    case.label,
                    if multipart { parts } else { 1 },
                    case.settings.concurrency,
                    needed as f64 / (1024.0 * MIB as f64),
                    mem_available() as f64 / (1024.0 * MIB as f64)
                )?;
                continue;
            }
            let (arn, event) = new_dev_version(&world, &world.world.names.dev_group, &model, None).await?;
            let mut config = world.world.config.clone();
            config.copy = case.settings;
            let sampler = pid.map(|pid| {
                let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let flag = stop.clone();
                let handle = std::thread::spawn(move || {
                    let mut peak = 0;
                    while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                        peak = peak.max(status_kib(pid, "VmRSS:").unwrap_or(0));
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    peak
                });
                (stop, handle)
            });
            log.take();
            let started = Instant::now();
            let outcome = deliver(&base, &config, &event).await;
            let elapsed = started.elapsed();
            let peak = sampler.map(|(stop, handle)| {
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
                handle.join().unwrap_or(0)
            });
            let requests = log.take();
            let by_op = RequestLog::by_operation(&requests);
            let copy_calls: usize = ["S3.CopyObject", "S3.UploadPartCopy", "S3.CreateMultipartUpload", "S3.CompleteMultipartUpload", "S3.AbortMultipartUpload"]
                .iter()
                .filter_map(|op| by_op.get(*op))
                .sum();
            let peak = peak.map_or("?".into(), |kib| format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0)));
            match outcome {
                Ok(Outcome::Promoted(summary)) => {
                    let artifact = &summary.artifacts[0];
                    anyhow::ensure!(artifact.size == size, "copied {} of {size} bytes", artifact.size);
                    writeln!(
                        text,
                        "| {size_mib} MiB | {} | {} | {} | {:.1} s | {:.0} | {copy_calls} | {} | {peak} |",
                        case.label,
                        if multipart { parts } else { 1 },
                        case.settings.concurrency,
                        elapsed.as_secs_f64(),
                        size as f64 / 1e6 / elapsed.as_secs_f64(),
                        requests.len(),
                    )?;
                    fastest.push((
                        format!("{size_mib} MiB, {} at concurrency {}", case.label, case.settings.concurrency),
                        size as f64 / 1e6 / elapsed.as_secs_f64(),
                    ));
                    world.s3().delete_object().bucket(artifact.central.bucket()).key(artifact.central.key()).send().await.ok();
                }
                other => writeln!(
                    text,
                    "| {size_mib} MiB | {} | {} | {} | failed after {:.1} s: {other:?} | | {copy_calls} | {} | {peak} |",
                    case.label,
                    parts,
                    case.settings.concurrency,
                    elapsed.as_secs_f64(),
                    requests.len()
                )?,
            }
            let _ = arn;
        }
        world.s3().delete_object().bucket(&world.world.names.dev_bucket).key(format!("bench/{label}/model.tar.gz")).send().await.ok();
    }
    writeln!(text)?;
    for note in notes {
        writeln!(text, "{note}")?;
    }
    if let Some((label, rate)) = fastest.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
        writeln!(text, "Fastest on this run: {label} at {rate:.0} MB/s.\n")?;
    }
    writeln!(text, "How to read this: moto 5.2.5 answers every `UploadPartCopy` by reading the *whole* source object into memory and")?;
    writeln!(text, "slicing the part out (`upload_part_copy` takes `key.value[start:end]`), and a single Python process serves all")?;
    writeln!(text, "requests; so on moto parallel parts cost one source-size of memory each and cannot beat one `CopyObject`. Real S3")?;
    writeln!(text, "copies server-side without either limit, and refuses `CopyObject` above 5 GiB. These figures therefore cannot")?;
    writeln!(text, "rank the copy settings for AWS, and the defaults (256 MiB threshold, 128 MiB parts, concurrency 8) are left as")?;
    writeln!(text, "they are. What carries over is the call count: 1 request for a single copy, `parts + 2` for a multipart one")?;
    writeln!(text, "(create, parts, complete), whatever the concurrency; the rest of a promotion adds the same ~16 calls.")?;
    Ok(text)
}

// ---------------------------------------------------------------------------------------------
// 4. Burst

async fn burst(args: &Args) -> Result<String> {
    let world = TestWorld::new().await;
    let bucket = world.world.names.dev_bucket.clone();
    let model = put_object(world.dev(), &bucket, "burst/model.tar.gz", vec![42; 64 * 1024]).await?;
    let evaluation =
        put_object(world.dev(), &bucket, "burst/evaluation.json", br#"{"binary_classification_metrics": {"auc": {"value": 0.9}}}"#.to_vec()).await?;
    let group = world.world.names.dev_group.clone();
    let registering = Instant::now();
    let registered: Vec<Result<(ModelPackageArn, Value)>> =
        futures::stream::iter(0..args.burst).map(|_| new_dev_version(&world, &group, &model, Some((&evaluation, &evaluation)))).buffered(8).collect().await;
    let events: Vec<(ModelPackageArn, Value)> = registered.into_iter().collect::<Result<_>>()?;
    eprintln!("registered {} dev versions in {:?}", events.len(), registering.elapsed());
    // 500 distinct approvals and each delivered twice, interleaved as EventBridge's at-least-once delivery can.
    let mut deliveries: Vec<usize> = (0..events.len()).chain(0..events.len()).collect();
    let mut seed = 0x5eed_u64;
    for i in (1..deliveries.len()).rev() {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        deliveries.swap(i, (seed >> 33) as usize % (i + 1));
    }
    let (sdk, log) = counted(&world);
    let ports = promotion_aws::wiring::promote_ports(&sdk, &world.world.config);
    let config = world.world.config.clone();
    log.take();
    let started = Instant::now();
    let mut queue: std::collections::VecDeque<usize> = deliveries.into_iter().collect();
    let (mut promoted, mut already, mut retried, mut failed) = (0usize, 0usize, 0usize, Vec::new());
    while !queue.is_empty() {
        let round: Vec<usize> = queue.drain(..).collect();
        let answers: Vec<(usize, Result<Outcome, PromoteError>)> = futures::stream::iter(round)
            .map(|index| {
                let (ports, config, event) = (&ports, &config, &events[index].1);
                async move { (index, deliver(ports, config, event).await) }
            })
            .buffer_unordered(args.concurrency)
            .collect()
            .await;
        for (index, answer) in answers {
            match answer {
                Ok(Outcome::Promoted(_)) => promoted += 1,
                Ok(Outcome::AlreadyPromoted(_)) => already += 1,
                Err(error) if error.is_retryable() => {
                    retried += 1;
                    queue.push_back(index);
                }
                other => failed.push(format!("{}: {other:?}", events[index].0)),
            }
        }
        if !queue.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let drained = started.elapsed();
    let requests = log.len();
    // The count check: every source has exactly one central version, nothing lost.
    let central_group = central_group_name(&events[0].0);
    let sagemaker = world.sagemaker();
    let mut descriptions = Vec::new();
    let mut token = None;
    loop {
        let page = sagemaker.list_model_packages().model_package_group_name(central_group.as_str()).set_next_token(token).max_results(100).send().await?;
        for summary in page.model_package_summary_list() {
            descriptions.push(summary.model_package_description().unwrap_or_default().to_owned());
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let mut distinct = descriptions.clone();
    distinct.sort();
    distinct.dedup();
    let duplicates = descriptions.len() - distinct.len();
    let mut lost = 0;
    for (source, _) in &events {
        let record = world.ports.ledger.get(source).await?;
        let ok = record.is_some_and(|r| r.state.as_str() == "Promoted" && r.central_package.is_some())
            && distinct.binary_search(&central_description(source)).is_ok();
        lost += usize::from(!ok);
    }
    let mut text = String::new();
    writeln!(text, "{} dev versions are approved (a 64 KiB model and a metrics report each); their {} approval events and a", events.len(), events.len())?;
    writeln!(
        text,
        "duplicate of each ({} deliveries, shuffled) go through the handler with at most {} at once, all into one central",
        events.len() * 2,
        args.concurrency
    )?;
    writeln!(text, "group. A retryable answer (a claim held by a concurrent delivery) is delivered again after 200 ms, as EventBridge")?;
    writeln!(text, "retries. The count check then lists the central group and reads every ledger record.\n")?;
    writeln!(text, "| | |\n|---|---|")?;
    writeln!(text, "| deliveries | {} ({} distinct + {} duplicates), concurrency {} |", events.len() * 2, events.len(), events.len(), args.concurrency)?;
    writeln!(text, "| time to drain | {:.1} s ({:.1} deliveries/s) |", drained.as_secs_f64(), (events.len() * 2 + retried) as f64 / drained.as_secs_f64())?;
    writeln!(text, "| answers | {promoted} Promoted, {already} AlreadyPromoted, {retried} retryable (redelivered), {} failed |", failed.len())?;
    writeln!(text, "| AWS calls | {requests} ({:.1} per distinct approval) |", requests as f64 / events.len() as f64)?;
    writeln!(text, "| central versions | {} |", descriptions.len())?;
    writeln!(text, "| duplicates | {duplicates} |")?;
    writeln!(text, "| lost | {lost} |")?;
    let pass = descriptions.len() == events.len() && duplicates == 0 && lost == 0 && failed.is_empty();
    writeln!(text, "\nCount check ({} central versions, 0 duplicates, 0 lost): **{}**", events.len(), if pass { "pass" } else { "fail" })?;
    for failure in failed.iter().take(5) {
        writeln!(text, "- {failure}")?;
    }
    Ok(text)
}

// ---------------------------------------------------------------------------------------------
// 5. criterion

fn criterion(args: &Args) -> Result<String> {
    let group = args.criterion_dir.join("parse");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&group)
        .with_context(|| format!("{} (run `cargo bench -p promotion-bench --bench parse` first)", group.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("new/estimates.json").exists())
        .collect();
    entries.sort();
    let mut text = String::new();
    writeln!(text, "`cargo bench --profile release -p promotion-bench --bench parse` (criterion 0.5): `StateChange::parse` on the reference")?;
    writeln!(text, "events, from a `serde_json::Value` (what the handler receives) and from the wire bytes (deserialization included).\n")?;
    writeln!(text, "| benchmark | mean time | 95% interval | throughput |")?;
    writeln!(text, "|---|---|---|---|")?;
    for entry in entries {
        let estimates: Value = serde_json::from_str(&std::fs::read_to_string(entry.join("new/estimates.json"))?)?;
        let mean = &estimates["mean"];
        let ns = mean["point_estimate"].as_f64().unwrap_or(f64::NAN);
        let low = mean["confidence_interval"]["lower_bound"].as_f64().unwrap_or(f64::NAN);
        let high = mean["confidence_interval"]["upper_bound"].as_f64().unwrap_or(f64::NAN);
        writeln!(
            text,
            "| {} | {} | {}–{} | {:.2} M events/s |",
            entry.file_name().unwrap_or_default().to_string_lossy(),
            nanos(ns),
            nanos(low),
            nanos(high),
            1e3 / ns
        )?;
    }
    Ok(text)
}

fn nanos(ns: f64) -> String {
    if ns >= 1000.0 {
        format!("{:.2} µs", ns / 1000.0)
    } else {
        format!("{ns:.0} ns")
    }
}
