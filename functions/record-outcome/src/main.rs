use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let (ports, config) = shared::adapters::deploy_from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let (ports, config) = (&ports, &config);
        async move { record_outcome::handler(ports, config, event).await.map_err(Diagnostic::from) }
    }))
    .await
}
