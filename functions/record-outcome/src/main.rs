use lambda_runtime::{service_fn, LambdaEvent};
use promotion_aws::{runtime, telemetry, wiring};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let (ports, config) = wiring::deploy_from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let (ports, config) = (&ports, &config);
        async move { record_outcome::handler(ports, config, event).await.map_err(runtime::diagnostic) }
    }))
    .await
}
