use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;
use shared::deployment::DeployConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let config = DeployConfig::from_env()?;
    let sdk = shared::adapters::load_sdk_config().await;
    let ports = shared::adapters::deploy_ports(&sdk, &config);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let (ports, config) = (&ports, &config);
        async move { test_model::handler(ports, config, event).await.map_err(Diagnostic::from) }
    }))
    .await
}
