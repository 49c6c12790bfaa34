//! deploy-model on the reference job events, over fakes: continuation-token polling, silent
//! rollbacks, failures.

mod common;

use common::{fixture, invoke, run_job};
use lambda_runtime::{Context, LambdaEvent};
use promotion_core::deployment::JobOutcome;
use promotion_core::domain::ids::Stage;
use promotion_core::domain::ledger::DeploymentState;
use promotion_core::domain::pipeline::PipelineStage;
use promotion_core::fakes::{DeployWorld, Fault, Transition};
use promotion_core::ports::EndpointStatus;
use serde_json::Value;

#[tokio::test]
async fn a_first_deployment_creates_the_endpoint_and_polls_until_in_service() {
    let world = DeployWorld::new(2);

    let (outcome, invocations) = run_job(&world, fixture("codepipeline-job-deploy-test.json")).await;

    assert!(matches!(outcome, JobOutcome::Succeeded { .. }), "{outcome:?}");
    assert_eq!(invocations, 4, "start, two polls while Creating, then InService");
    let endpoint = world.test.endpoint("promoted-churn-prediction-111111111111-test").unwrap();
    assert_eq!((endpoint.status, endpoint.config.as_str()), (EndpointStatus::InService, "promoted-churn-prediction-111111111111-v1-test"));
    assert_eq!(world.test.models.lock().unwrap().as_slice(), ["promoted-churn-prediction-111111111111-v1-test"]);
    let answers = world.jobs.answers.lock().unwrap().clone();
    assert_eq!(answers.len(), 4);
    assert!(answers[..3].iter().all(|a| a.succeeded && a.continuation.is_some()));
    assert!(answers[3].succeeded && answers[3].continuation.is_none());
    let record = world.ports.deployments.deployment(Stage::Test, "promoted-churn-prediction-111111111111-test").await.unwrap().unwrap();
    assert_eq!((record.state, record.previous_config), (DeploymentState::InService, None));
    assert_eq!(world.audit_actions(), ["deploy-started", "deployed"]);
}

#[tokio::test]
async fn a_prod_update_is_blue_green_and_remembers_the_previous_config() {
    let world = DeployWorld::new(1);
    world.pipeline_at(&world.package, PipelineStage::DeployProd);
    world.prod.create_endpoint_for_test("promoted-churn-prediction-111111111111-prod", "promoted-churn-prediction-111111111111-v0-prod");

    let (outcome, _) = run_job(&world, fixture("codepipeline-job-deploy-prod.json")).await;

    assert!(matches!(outcome, JobOutcome::Succeeded { .. }), "{outcome:?}");
    let calls = world.prod.calls.lock().unwrap().clone();
    assert!(
        calls.contains(&"UpdateEndpoint promoted-churn-prediction-111111111111-prod promoted-churn-prediction-111111111111-v1-prod blue-green".to_owned()),
        "{calls:?}"
    );
    let record = world.ports.deployments.deployment(Stage::Prod, "promoted-churn-prediction-111111111111-prod").await.unwrap().unwrap();
    assert_eq!(record.previous_config.as_deref(), Some("promoted-churn-prediction-111111111111-v0-prod"));
}

#[tokio::test]
async fn an_endpoint_that_fails_fails_the_job_with_the_reason() {
    let world = DeployWorld::new(1);
    *world.test.transition.lock().unwrap() = Transition::Fail("ResourceLimitExceeded: ml.m5.large".into());

    let (outcome, _) = run_job(&world, fixture("codepipeline-job-deploy-test.json")).await;

    let JobOutcome::Failed { error_type, message } = outcome else { panic!("{outcome:?}") };
    assert_eq!(error_type, "Rejected.EndpointFailed");
    assert!(message.contains("ResourceLimitExceeded"), "{message}");
    assert!(!world.last_answer().succeeded);
    assert_eq!(world.audit_actions(), ["deploy-started", "deploy-failed"]);
}

#[tokio::test]
async fn a_silent_rollback_by_sagemaker_fails_the_job() {
    let world = DeployWorld::new(0);
    world.test.create_endpoint_for_test("promoted-churn-prediction-111111111111-test", "promoted-churn-prediction-111111111111-v0-test");
    *world.test.transition.lock().unwrap() = Transition::SilentRollback;

    let (outcome, _) = run_job(&world, fixture("codepipeline-job-deploy-test.json")).await;

    let JobOutcome::Failed { error_type, message } = outcome else { panic!("{outcome:?}") };
    assert_eq!(error_type, "Rejected.SilentRollback");
    assert!(message.contains("runs promoted-churn-prediction-111111111111-v0-test"), "{message}");
}

#[tokio::test]
async fn a_version_not_approved_centrally_is_not_deployed() {
    let world = DeployWorld::new(0);
    world.central.packages.lock().unwrap().values_mut().for_each(|p| p.status = Some(promotion_core::domain::event::ApprovalStatus::PendingManualApproval));

    let (outcome, invocations) = run_job(&world, fixture("codepipeline-job-deploy-test.json")).await;

    assert_eq!(invocations, 1);
    assert!(matches!(outcome, JobOutcome::Failed { ref error_type, .. } if error_type == "Rejected.NotApproved"), "{outcome:?}");
    assert!(world.test.endpoint("promoted-churn-prediction-111111111111-test").is_none());
}

#[tokio::test]
async fn malformed_parameters_still_answer_the_job() {
    let world = DeployWorld::new(0);
    let mut job = fixture("codepipeline-job-deploy-test.json");
    job["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] = Value::String("{\"stage\":\"staging\"}".into());

    let outcome = invoke(&world, job).await;

    assert!(matches!(outcome, JobOutcome::Failed { ref error_type, .. } if error_type == "Rejected.InvalidJob"), "{outcome:?}");
    assert_eq!(world.last_answer().job_id, "8d5b1f6e-0c1a-4e8f-9a57-3f2d1c0b9a81");
}

#[tokio::test(start_paused = true)]
async fn a_hung_call_still_answers_the_job_before_the_invocations_deadline() {
    let world = DeployWorld::new(0);
    world.test.fault("CreateEndpoint", Fault::Hang);
    let mut context = Context::default();
    context.deadline = u64::try_from((chrono::Utc::now() + chrono::Duration::seconds(30)).timestamp_millis()).unwrap();
    let started = tokio::time::Instant::now();

    let outcome = deploy_model::handler(&world.ports, &world.config, LambdaEvent::new(fixture("codepipeline-job-deploy-test.json"), context)).await.unwrap();

    assert!(started.elapsed() < std::time::Duration::from_secs(30), "answered after the deadline: {:?}", started.elapsed());
    let JobOutcome::Continuing { summary, .. } = outcome else { panic!("{outcome:?}") };
    assert!(summary.contains("ran out of time while starting the deployment"), "{summary}");
    assert_eq!(world.last_answer().job_id, "8d5b1f6e-0c1a-4e8f-9a57-3f2d1c0b9a81");
    assert!(world.last_answer().succeeded && world.last_answer().continuation.is_some());
}
