//! deploy-model never logs the job's artifactCredentials. A binary of its own: no other test
//! shares the process, so no other thread races the capture for the callsites' interest.

mod common;

use common::{fixture, invoke, run_job};
use promotion_core::fakes::{CapturedLogs, DeployWorld};
use serde_json::Value;

#[tokio::test]
async fn the_jobs_artifact_credentials_never_reach_a_log_line() {
    let (logs, _guard) = CapturedLogs::everything();
    let world = DeployWorld::new(1);
    let job = fixture("codepipeline-job-deploy-test.json");

    run_job(&world, job.clone()).await;
    let mut failing = fixture("codepipeline-job-deploy-prod.json");
    failing["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] = Value::String("not json".into());
    invoke(&world, failing).await;

    let text = logs.text();
    for decision in ["deploy-started", "deployed", "continue", "failed"] {
        assert!(text.contains(&format!("\"decision\":\"{decision}\"")), "{decision} is not logged: {text}");
    }
    logs.assert_free_of_credentials(&job);
}
