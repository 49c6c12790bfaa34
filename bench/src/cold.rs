//! 1. Cold start and peak memory of the release binaries, run against the bench's Runtime API.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use promotion_tests::TestWorld;
use serde_json::Value;

use crate::args::{root, Args};
use crate::proc::status_kib;
use crate::report::{median, ms};
use crate::runtime_api::RuntimeApi;
use crate::world::{dev_artifacts, new_dev_version};

const FUNCTIONS: [&str; 5] = ["promote-model", "start-deployment", "deploy-model", "test-model", "record-outcome"];

const INTRO: &str = "Each release binary (`cargo build --release -p <function>`) is started against a Runtime API served by
the bench on 127.0.0.1 with the environment of a provisioned local world. **init** is the time from
spawn to the runtime's first `GET /2018-06-01/runtime/invocation/next` (config read, SDK clients built);
**first answer** from spawn to its `POST …/response` (or `…/error`) for one event. Peak RSS is `VmHWM`
of the process just before it is killed (`ru_maxrss` from `wait4` is no use here: a child spawned by vfork counts
its parent's pages until it execs). Median of RUNS runs;
promote-model gets a new approved dev version each run (a ~3 MB model, an evaluation report and a baseline), so
every run is a full promotion against moto. The other functions get their reference event from events/, which names
a central version, job or execution this world does not hold (and moto lacks the CodePipeline job calls), so their
first answer is the typed error they report (shown), reached with `AWS_MAX_ATTEMPTS=1` so that SDK back-off does
not pad it: their init and memory figures are whole, their first answer is a lower bound.
";

struct ColdRun {
    init: Duration,
    first_answer: Option<Duration>,
    kind: String,
    hwm_kib: u64,
}

pub async fn cold_starts(args: &Args) -> Result<String> {
    let world = TestWorld::new().await;
    let mut env = env_of(&world.world.env_file().await?);
    env.retain(|(k, _)| k != "PROMOTE_LOCAL_PIPELINE");
    let (model, evaluation, constraints) = dev_artifacts(&world);
    let mut text = INTRO.replace("RUNS", &args.runs.to_string());
    writeln!(text)?;
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
                let mut env = env.clone();
                env.retain(|(k, _)| k != "AWS_MAX_ATTEMPTS");
                env.push(("AWS_MAX_ATTEMPTS".into(), "1".into()));
                (std::fs::read(root().join("events").join(reference_event(function)))?, env)
            };
            runs.push(cold_run(&binary, &env, event, function).await?);
        }
        writeln!(text, "{}", row(function, size, &runs))?;
    }
    Ok(text)
}

/// The reference event of a deployment function, in events/.
fn reference_event(function: &str) -> &'static str {
    match function {
        "start-deployment" => "sagemaker-central-approval.json",
        "deploy-model" => "codepipeline-job-deploy-test.json",
        "test-model" => "codepipeline-job-test-model.json",
        _ => "codepipeline-approval-succeeded.json",
    }
}

fn row(function: &str, size: u64, runs: &[ColdRun]) -> String {
    let mut inits: Vec<f64> = runs.iter().map(|r| ms(r.init)).collect();
    let mut answers: Vec<f64> = runs.iter().filter_map(|r| r.first_answer.map(ms)).collect();
    let mut hwm: Vec<f64> = runs.iter().map(|r| r.hwm_kib as f64 / 1024.0).collect();
    let (min, max) = (inits.iter().copied().fold(f64::MAX, f64::min), inits.iter().copied().fold(0.0, f64::max));
    let mut kinds: Vec<&str> = runs.iter().map(|r| r.kind.as_str()).collect();
    kinds.dedup();
    let init = median(&mut inits);
    let rss = median(&mut hwm);
    let rss_verdict = match function {
        "promote-model" if rss < 40.0 => "pass",
        "promote-model" => "**fail**",
        _ => "(target is promote-model's)",
    };
    format!(
        "| {function} | {:.1} MB | {init:.1} ms | {min:.1}–{max:.1} ms | {:.0} ms | {} | {rss:.1} MiB | {} | {rss_verdict} |",
        size as f64 / 1e6,
        median(&mut answers),
        kinds.join(", "),
        if init < 50.0 { "pass" } else { "**fail**" },
    )
}

/// The `export K='V'` lines of a world's environment file.
fn env_of(world_env: &str) -> Vec<(String, String)> {
    world_env
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect()
}

async fn cold_run(binary: &Path, env: &[(String, String)], event: Vec<u8>, function: &str) -> Result<ColdRun> {
    let arn = format!("arn:aws:lambda:us-east-1:222222222222:function:{function}");
    let api = RuntimeApi::serve(event, arn, 900_000).await?;
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
    let answered = api.wait_answer(Duration::from_secs(120)).await;
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
