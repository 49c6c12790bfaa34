//! One delivery of an event to promote-model in a process of its own, wired from the environment
//! as the Lambda is: the fault suite kills it (SIGKILL) in the middle of a copy.
//!
//! Usage: `deliver-once EVENT_FILE SECONDS_TO_DEADLINE`

use anyhow::{Context as _, Result};
use lambda_runtime::{Context, LambdaEvent};
use promotion_core::config::PromoteConfig;

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().context("usage: deliver-once EVENT_FILE SECONDS_TO_DEADLINE")?;
    let seconds: i64 = args.next().context("SECONDS_TO_DEADLINE is missing")?.parse()?;
    let event = serde_json::from_str(&std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?)?;
    let config = PromoteConfig::from_env()?;
    let sdk = promotion_aws::wiring::load_sdk_config().await;
    let ports = promotion_aws::wiring::promote_ports(&sdk, &config);
    let mut context = Context::default();
    context.request_id = uuid::Uuid::new_v4().to_string();
    context.deadline = u64::try_from((chrono::Utc::now() + chrono::Duration::seconds(seconds)).timestamp_millis())?;
    let outcome = promote_model::handler(&ports, &config, LambdaEvent::new(event, context)).await;
    println!("{outcome:?}");
    Ok(())
}
