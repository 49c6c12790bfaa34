use lambda_runtime::{service_fn, LambdaEvent};
use promotion_aws::{telemetry, wiring};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let (ports, config) = wiring::deploy_from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let (ports, config) = (&ports, &config);
        async move { start_deployment::dispatch(ports, config, event).await }
    }))
    .await
}
