//! test-model never logs the job's artifactCredentials, whatever it decides. A binary of its
//! own: no other test shares the process, so no other thread races the capture for the
//! callsites' interest.

mod common;

use common::{deployed, invoke, invoke_with, test_job, throttled, JOB_ID, PREVIOUS};
use lambda_runtime::Context;
use promotion_core::fakes::CapturedLogs;
use promotion_core::ports::InvokeResult;
use serde_json::Value;

#[tokio::test]
async fn the_jobs_artifact_credentials_never_reach_a_log_line() {
    let (logs, _guard) = CapturedLogs::everything();
    let passing = deployed(None).await;
    invoke(&passing).await;
    let failing = deployed(Some(PREVIOUS)).await;
    failing.test.replies.lock().unwrap().push_back(InvokeResult { status: 500, body: b"model error".to_vec() });
    invoke(&failing).await;
    let throttled_world = deployed(None).await;
    throttled_world.test.fault("InvokeEndpoint", throttled());
    invoke(&throttled_world).await;
    let mut malformed = test_job();
    malformed["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] = Value::String("not json".into());
    invoke_with(&deployed(None).await, malformed, Context::default()).await;

    let text = logs.text();
    for decision in ["tests-passed", "tests-failed", "rejected-by-tests", "rolled-back", "retest"] {
        assert!(text.contains(&format!("\"decision\":\"{decision}\"")), "{decision} is not logged: {text}");
    }
    assert!(text.contains(JOB_ID) && text.contains("arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-prediction-111111111111/1"));
    logs.assert_free_of_credentials(&test_job());
}
