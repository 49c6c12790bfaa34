//! deploy-model against the fakes.

use super::*;
use crate::deployment::testing::{add_version, deadline, deploy, job_event};
use crate::fakes::{DeployWorld, Fault, Transition};
use crate::ports::DeploymentRecords;

const TEST_ENDPOINT: &str = "promoted-churn-prediction-111111111111-test";
const V1_TEST: &str = "promoted-churn-prediction-111111111111-v1-test";

#[tokio::test]
async fn a_failed_endpoint_is_deleted_and_created_anew_since_sagemaker_updates_no_failed_endpoint() {
    let world = DeployWorld::new(1);
    world.test.create_endpoint_for_test(TEST_ENDPOINT, "promoted-churn-prediction-111111111111-v0-test");
    world.test.endpoints.lock().unwrap().get_mut(TEST_ENDPOINT).unwrap().status = EndpointStatus::Failed;

    let outcome = deploy(&world, &world.package, Stage::Test).await;

    assert!(matches!(outcome, JobOutcome::Succeeded { .. }), "{outcome:?}");
    let calls = world.test.calls.lock().unwrap().clone();
    assert_eq!(calls, [format!("DeleteEndpoint {TEST_ENDPOINT}"), format!("CreateEndpoint {TEST_ENDPOINT} {V1_TEST}")]);
    let endpoint = world.test.endpoint(TEST_ENDPOINT).unwrap();
    assert_eq!((endpoint.status, endpoint.config.as_str()), (EndpointStatus::InService, V1_TEST));
    let record = world.ledger.deployment(Stage::Test, TEST_ENDPOINT).await.unwrap().unwrap();
    assert_eq!((record.state, record.previous_config), (DeploymentState::InService, None), "a failed test finds nothing to return to and deletes it");
    let answers = world.jobs.answers.lock().unwrap().clone();
    let first: Progress = serde_json::from_str(answers[0].continuation.as_deref().unwrap()).unwrap();
    assert_eq!(first, Progress::Recreate { endpoint: TEST_ENDPOINT.into(), config: V1_TEST.into() });
    assert_eq!(world.audit_actions(), ["deploy-started", "deployed"]);
}

#[tokio::test]
async fn an_endpoint_being_deleted_is_created_anew_once_gone() {
    let world = DeployWorld::new(0);
    world.test.create_endpoint_for_test(TEST_ENDPOINT, "promoted-churn-prediction-111111111111-v0-test");
    world.test.endpoints.lock().unwrap().get_mut(TEST_ENDPOINT).unwrap().status = EndpointStatus::Deleting;

    let first = handle_deploy_job(&world.ports, &world.config, &job_event("job-1", Stage::Test, &world.package, None), deadline()).await.unwrap();
    let JobOutcome::Continuing { continuation, .. } = first else { panic!("{first:?}") };
    assert!(world.test.calls.lock().unwrap().is_empty(), "nothing is asked of an endpoint on its way out");
    world.test.endpoints.lock().unwrap().remove(TEST_ENDPOINT);
    let second =
        handle_deploy_job(&world.ports, &world.config, &job_event("job-2", Stage::Test, &world.package, Some(&continuation)), deadline()).await.unwrap();

    assert!(matches!(second, JobOutcome::Continuing { .. }), "{second:?}");
    assert_eq!(world.test.calls.lock().unwrap().as_slice(), [format!("CreateEndpoint {TEST_ENDPOINT} {V1_TEST}")]);
}

#[tokio::test]
async fn an_endpoint_sagemaker_is_patching_is_left_alone_until_it_is_back_in_service() {
    let world = DeployWorld::new(0);
    world.test.create_endpoint_for_test(TEST_ENDPOINT, "promoted-churn-prediction-111111111111-v0-test");
    world.test.endpoints.lock().unwrap().get_mut(TEST_ENDPOINT).unwrap().status = EndpointStatus::SystemUpdating;

    let first = handle_deploy_job(&world.ports, &world.config, &job_event("job-1", Stage::Test, &world.package, None), deadline()).await.unwrap();

    let JobOutcome::Continuing { continuation, summary } = first else { panic!("{first:?}") };
    assert!(summary.contains("SystemUpdating"), "{summary}");
    assert_eq!(serde_json::from_str::<Progress>(&continuation).unwrap(), Progress::Start);
    assert!(world.test.calls.lock().unwrap().is_empty(), "SageMaker takes no update meanwhile");
    world.test.endpoints.lock().unwrap().get_mut(TEST_ENDPOINT).unwrap().status = EndpointStatus::InService;
    let second =
        handle_deploy_job(&world.ports, &world.config, &job_event("job-2", Stage::Test, &world.package, Some(&continuation)), deadline()).await.unwrap();
    assert!(matches!(second, JobOutcome::Continuing { .. }), "{second:?}");
    assert_eq!(world.test.calls.lock().unwrap().as_slice(), [format!("UpdateEndpoint {TEST_ENDPOINT} {V1_TEST} direct")]);
}

#[tokio::test(start_paused = true)]
async fn a_hung_call_still_answers_the_job_before_the_deadline_and_the_next_job_goes_on() {
    let world = DeployWorld::new(0);
    world.test.fault("DescribeEndpoint", Fault::Hang);
    let started = tokio::time::Instant::now();
    let ends = Utc::now() + chrono::Duration::seconds(120);

    let first = handle_deploy_job(&world.ports, &world.config, &job_event("job-1", Stage::Test, &world.package, None), ends).await.unwrap();

    let waited = started.elapsed();
    assert!(waited >= std::time::Duration::from_secs(110) && waited < std::time::Duration::from_secs(120), "answered after {waited:?}");
    let JobOutcome::Continuing { continuation, summary } = first else { panic!("{first:?}") };
    assert!(summary.contains("ran out of time while starting the deployment"), "{summary}");
    assert_eq!(world.last_answer().job_id, "job-1");
    assert_eq!(serde_json::from_str::<Progress>(&continuation).unwrap(), Progress::Start, "the next job starts over");
    let next = job_event("job-2", Stage::Test, &world.package, Some(&continuation));
    let second = handle_deploy_job(&world.ports, &world.config, &next, Utc::now() + chrono::Duration::seconds(120)).await.unwrap();
    assert!(matches!(second, JobOutcome::Continuing { .. }), "{second:?}");
    assert_eq!(world.test.calls.lock().unwrap().as_slice(), [format!("CreateEndpoint {TEST_ENDPOINT} {V1_TEST}")]);
}

#[tokio::test]
async fn the_version_to_return_to_survives_a_failed_deployment_in_between() {
    let world = DeployWorld::new(0);
    let (second, third) = (add_version(&world, 2), add_version(&world, 3));
    assert!(matches!(deploy(&world, &world.package, Stage::Prod).await, JobOutcome::Succeeded { .. }));
    *world.prod.transition.lock().unwrap() = Transition::SilentRollback;
    assert!(matches!(deploy(&world, &second, Stage::Prod).await, JobOutcome::Failed { .. }));
    *world.prod.transition.lock().unwrap() = Transition::Succeed;

    assert!(matches!(deploy(&world, &third, Stage::Prod).await, JobOutcome::Succeeded { .. }));

    let record = world.ledger.deployment(Stage::Prod, "promoted-churn-prediction-111111111111-prod").await.unwrap().unwrap();
    assert_eq!(record.package, third);
    assert_eq!(record.previous_config.as_deref(), Some("promoted-churn-prediction-111111111111-v1-prod"));
    assert_eq!(record.previous_package, Some(world.package.clone()), "version 1 runs behind version 3, not the failed version 2");
}

#[tokio::test]
async fn a_redelivered_job_repeats_no_audit_entry() {
    let world = DeployWorld::new(0);
    let first = handle_deploy_job(&world.ports, &world.config, &job_event("job-1", Stage::Test, &world.package, None), deadline()).await.unwrap();
    let JobOutcome::Continuing { continuation, .. } = first else { panic!("{first:?}") };
    let last = job_event("job-2", Stage::Test, &world.package, Some(&continuation));
    assert!(matches!(handle_deploy_job(&world.ports, &world.config, &last, deadline()).await.unwrap(), JobOutcome::Succeeded { .. }));
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    // Lambda delivers the last invocation again: its answer is dropped, its entries too.
    let again = handle_deploy_job(&world.ports, &world.config, &last, deadline()).await.unwrap();

    assert!(matches!(again, JobOutcome::Succeeded { .. }), "{again:?}");
    assert_eq!(world.audit_actions(), ["deploy-started", "deployed"]);
    assert_eq!(world.jobs.answers.lock().unwrap().len(), 2);
}
