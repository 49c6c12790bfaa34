//! test-model over fakes: a passing run, and a failing one that rolls the endpoint back.

use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;
use shared::deployment::JobOutcome;
use shared::domain::event::ApprovalStatus;
use shared::domain::ids::{ModelPackageArn, Stage};
use shared::domain::ledger::{DeploymentRecord, DeploymentState};
use shared::fakes::DeployWorld;
use shared::ports::{EndpointStatus, InvokeResult};

const ENDPOINT: &str = "promoted-churn-prediction-111111111111-test";
const CONFIG: &str = "promoted-churn-prediction-111111111111-v1-test";

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn deployed(previous: Option<&str>) -> DeployWorld {
    let world = DeployWorld::new(0);
    world.test.create_endpoint_for_test(ENDPOINT, CONFIG);
    let previous_package: Option<ModelPackageArn> =
        previous.map(|_| "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-prediction-111111111111/2".parse().unwrap());
    let record = DeploymentRecord {
        stage: Stage::Test,
        endpoint: ENDPOINT.into(),
        package: world.package.clone(),
        config: CONFIG.into(),
        state: DeploymentState::InService,
        previous_config: previous.map(str::to_owned),
        previous_package,
        at: chrono::Utc::now(),
    };
    world.ports.ledger.record_deployment(&record).await.unwrap();
    world
}

async fn invoke(world: &DeployWorld) -> JobOutcome {
    let event = LambdaEvent::new(fixture("codepipeline-job-test-model.json"), Context::default());
    test_model::handler(&world.ports, &world.config, event).await.expect("answered")
}

fn report(world: &DeployWorld) -> Value {
    let key = "reports/churn-prediction-111111111111/1/test-f41c2a9d-83b7-4e65-a0d2-5b6c7e8f9a10.json";
    let uri = format!("s3://model-promotion-artifacts-222222222222/{key}").parse().unwrap();
    serde_json::from_slice(&world.store.bytes(&uri).expect("report written")).unwrap()
}

#[tokio::test]
async fn passing_cases_write_a_report_into_the_card_and_succeed_the_job() {
    let world = deployed(None).await;

    let outcome = invoke(&world).await;

    assert!(matches!(outcome, JobOutcome::Succeeded { ref summary } if summary.contains("2/2 test cases passed")), "{outcome:?}");
    let report = report(&world);
    assert_eq!((report["passed"].as_u64(), report["failed"].as_u64()), (Some(2), Some(0)));
    let cards = world.cards.cards.lock().unwrap();
    let card = cards["churn-prediction-111111111111"].last().unwrap().clone();
    assert_eq!(card["evaluation_details"][0]["metric_groups"][0]["metric_data"][0]["value"], true);
    assert_eq!(world.test.endpoint(ENDPOINT).unwrap().config, CONFIG);
    assert_eq!(world.audit_actions(), ["tests-passed"]);
    let sent = world.approvers.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "the governance officers are told");
    assert!(sent[0].1.contains("reports/churn-prediction-111111111111/1/test-f41c2a9d"), "{}", sent[0].1);
    assert!(sent[0].1.contains("#/model-cards/churn-prediction-111111111111"), "{}", sent[0].1);
}

#[tokio::test]
async fn a_failing_case_rolls_back_to_the_previous_config_and_rejects_the_version() {
    let world = deployed(Some("promoted-churn-prediction-111111111111-v0-test")).await;
    world.test.replies.lock().unwrap().push_back(InvokeResult { status: 500, body: b"model error".to_vec() });

    let outcome = invoke(&world).await;

    let JobOutcome::Failed { error_type, message } = outcome else { panic!("{outcome:?}") };
    assert_eq!(error_type, "Rejected.TestsFailed");
    assert!(message.contains("scores a typical customer: status 500, expected 200"), "{message}");
    assert!(message.contains("rolled back to promoted-churn-prediction-111111111111-v0-test"), "{message}");
    assert!(world.test.calls.lock().unwrap().contains(&format!("UpdateEndpoint {ENDPOINT} promoted-churn-prediction-111111111111-v0-test direct")));
    let central = world.central.packages.lock().unwrap()[world.package.as_str()].clone();
    assert_eq!(central.status, Some(ApprovalStatus::Rejected));
    let record = world.ports.ledger.deployment(Stage::Test, ENDPOINT).await.unwrap().unwrap();
    assert_eq!(record.state, DeploymentState::RolledBack);
    assert_eq!(world.audit_actions(), ["tests-failed", "rolled-back", "rejected-by-tests"]);
    assert_eq!(report(&world)["cases"][0]["passed"], false);
    assert!(world.approvers.sent.lock().unwrap().is_empty(), "nothing to approve");
}

#[tokio::test]
async fn a_failure_on_a_first_deployment_deletes_the_endpoint() {
    let world = deployed(None).await;
    world.test.replies.lock().unwrap().push_back(InvokeResult { status: 200, body: b"NaN".to_vec() });

    let outcome = invoke(&world).await;

    assert!(matches!(outcome, JobOutcome::Failed { ref message, .. } if message.contains("response lacks \"0.\"")), "{outcome:?}");
    assert!(world.test.endpoint(ENDPOINT).is_none(), "no previous config: the endpoint is deleted");
    assert!(world.test.calls.lock().unwrap().contains(&format!("DeleteEndpoint {ENDPOINT}")));
    assert!(!matches!(world.test.endpoint(ENDPOINT).map(|e| e.status), Some(EndpointStatus::InService)));
}
