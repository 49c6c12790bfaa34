use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;
use shared::config::PromoteConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let config = PromoteConfig::from_env()?;
    let sdk = shared::adapters::load_sdk_config().await;
    let ports = shared::adapters::promote_ports(&sdk, &config);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let (ports, config) = (&ports, &config);
        async move { promote_model::handler(ports, config, event).await.map_err(Diagnostic::from) }
    }))
    .await
}
