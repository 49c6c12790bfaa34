//! test-model over fakes: a passing run; a failing one that rejects the version and rolls the
//! endpoint back; an endpoint that no longer runs the version; transient and hanging calls;
//! the invocation's deadline.

mod common;

use common::{deployed, invoke, invoke_with, test_job, throttled, CONFIG, ENDPOINT, JOB_ID, PREVIOUS};
use lambda_runtime::Context;
use promotion_core::deployment::JobOutcome;
use promotion_core::domain::event::ApprovalStatus;
use promotion_core::domain::ids::Stage;
use promotion_core::domain::ledger::DeploymentState;
use promotion_core::fakes::{DeployWorld, Fault, DEPLOY_WORLD_EVIDENCE_BUCKET};
use promotion_core::ports::{EndpointStatus, FailureKind, InvokeResult, PortError};
use serde_json::Value;

/// The card of the central version under test, `churn-prediction-111111111111` v1.
const CARD: &str = "churn-prediction-111111111111-v1";

/// A context whose invocation ends `seconds` from now.
fn ending_in(seconds: i64) -> Context {
    let mut context = Context::default();
    context.deadline = u64::try_from((chrono::Utc::now() + chrono::Duration::seconds(seconds)).timestamp_millis()).unwrap();
    context
}

fn report_uri(job_id: &str) -> promotion_core::domain::ids::S3Uri {
    let key = format!("reports/churn-prediction-111111111111/1/test-{job_id}-attempt-1.json");
    format!("s3://{DEPLOY_WORLD_EVIDENCE_BUCKET}/{key}").parse().unwrap()
}

fn report(world: &DeployWorld) -> Value {
    serde_json::from_slice(&world.store.bytes(&report_uri(JOB_ID)).expect("report written")).unwrap()
}

fn central_status(world: &DeployWorld) -> Option<ApprovalStatus> {
    world.central.packages.lock().unwrap()[world.package.as_str()].status.clone()
}

fn card_versions(world: &DeployWorld) -> Vec<Value> {
    world.cards.cards.lock().unwrap()[CARD].clone()
}

fn endpoint_calls(world: &DeployWorld) -> Vec<String> {
    world.test.calls.lock().unwrap().clone()
}

#[tokio::test]
async fn passing_cases_write_a_report_into_the_card_and_succeed_the_job() {
    let world = deployed(None).await;

    let outcome = invoke(&world).await;

    let JobOutcome::Succeeded { summary, variables } = outcome else { panic!("{outcome:?}") };
    assert!(summary.contains("2/2 test cases passed"), "{summary}");
    let report = report(&world);
    assert_eq!((report["passed"].as_u64(), report["failed"].as_u64()), (Some(2), Some(0)));
    let cards = card_versions(&world);
    assert_eq!(cards.len(), 2, "the report is a new card version");
    assert_eq!(cards[1]["evaluation_details"][0]["metric_groups"][0]["metric_data"][0]["value"], true);
    assert_eq!(world.test.endpoint(ENDPOINT).unwrap().config, CONFIG);
    assert_eq!(world.audit_actions(), ["tests-passed"]);
    let sent = world.approvers.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "the governance officers are told");
    assert!(sent[0].1.contains("reports/churn-prediction-111111111111/1/test-f41c2a9d"), "{}", sent[0].1);
    assert!(sent[0].1.contains("#/model-cards/churn-prediction-111111111111"), "{}", sent[0].1);

    // The prod approval's link and text: exactly this version's report, at the version stored,
    // with the digest of its bytes, the release tested, and the card.
    assert_eq!(variables["ReportKey"], report_uri(JOB_ID).key());
    let (version, bytes) = world.store.versions(&report_uri(JOB_ID)).pop().unwrap();
    let sha256 = promotion_core::domain::naming::hex_sha256(&bytes);
    let fingerprint = world.ledger.records.lock().unwrap().values().next().unwrap().fingerprint.clone().unwrap();
    assert_eq!((&variables["ReportVersion"], &variables["ReportSha256"]), (&version, &sha256));
    assert_eq!((variables["ReleaseFingerprint"].as_str(), report["release_fingerprint"].as_str()), (fingerprint.as_str(), Some(fingerprint.as_str())));
    assert!(sent[0].1.contains(&sha256) && sent[0].1.contains(fingerprint.as_str()) && sent[0].1.contains(&format!("versionId={version}")), "{}", sent[0].1);
    let recorded = world.ledger.tests.lock().unwrap().values().next().cloned().unwrap();
    assert_eq!((recorded.report_version.as_deref(), recorded.report_sha256.as_str(), recorded.passed), (Some(version.as_str()), sha256.as_str(), true));
    assert_eq!(variables["ModelCardUrl"], format!("https://us-east-1.console.aws.amazon.com/sagemaker/home?region=us-east-1#/model-cards/{CARD}"));
    let slowest = report["cases"].as_array().unwrap().iter().filter_map(|c| c["latency_ms"].as_u64()).max().unwrap();
    assert_eq!(variables["TestSummary"], format!("2/2 test cases passed, slowest {slowest} ms"));
    let published: Vec<String> = promotion_core::deployment::test::published_variables().into_keys().collect();
    assert_eq!(variables.keys().cloned().collect::<Vec<_>>(), published, "what infra/pipeline.json says the approval may reference");
    let answer = world.last_answer();
    assert_eq!((answer.succeeded, answer.continuation, answer.variables), (true, None, variables), "handed to CodePipeline with the final answer");
}

#[tokio::test]
async fn a_failing_case_rejects_the_version_then_rolls_back_to_the_previous_config() {
    let world = deployed(Some(PREVIOUS)).await;
    world.test.replies.lock().unwrap().push_back(InvokeResult { status: 500, body: b"model error".to_vec() });

    let outcome = invoke(&world).await;

    let JobOutcome::Failed { error_type, message } = outcome else { panic!("{outcome:?}") };
    assert_eq!(error_type, "Rejected.TestsFailed");
    assert!(message.contains("scores a typical customer: status 500, expected 200"), "{message}");
    assert!(message.contains("was marked Rejected") && message.contains(&format!("rolled back to {PREVIOUS}")), "{message}");
    assert!(!message.contains("NOT DONE"), "{message}");
    assert!(endpoint_calls(&world).contains(&format!("UpdateEndpoint {ENDPOINT} {PREVIOUS} direct")));
    assert_eq!(central_status(&world), Some(ApprovalStatus::Rejected));
    let record = world.ports.deployments.deployment(Stage::Test, ENDPOINT).await.unwrap().unwrap();
    assert_eq!(record.state, DeploymentState::RolledBack);
    assert_eq!(world.audit_actions(), ["tests-failed", "rejected-by-tests", "rolled-back"], "rejected before the endpoint is touched");
    assert_eq!(report(&world)["cases"][0]["passed"], false);
    assert!(world.approvers.sent.lock().unwrap().is_empty(), "nothing to approve");
    assert!(!world.last_answer().succeeded && world.last_answer().variables.is_empty(), "no evidence for an approval");
}

#[tokio::test]
async fn a_failing_report_reaches_the_model_card_in_a_new_version() {
    let world = deployed(Some(PREVIOUS)).await;
    world.test.replies.lock().unwrap().push_back(InvokeResult { status: 200, body: b"NaN".to_vec() });

    invoke(&world).await;

    let cards = card_versions(&world);
    assert_eq!(cards.len(), 2, "one new card version");
    let evaluation = &cards[1]["evaluation_details"][0];
    assert_eq!(evaluation["name"], "test tests of version 1");
    let observation = evaluation["evaluation_observation"].as_str().unwrap();
    assert!(observation.contains("1 passed, 1 failed") && observation.contains(&report_uri(JOB_ID).to_string()), "{observation}");
    let cases = evaluation["metric_groups"][0]["metric_data"].as_array().unwrap();
    assert_eq!((cases[0]["name"].as_str(), &cases[0]["value"]), (Some("scores a typical customer"), &Value::Bool(false)));
    assert_eq!((cases[1]["name"].as_str(), &cases[1]["value"]), (Some("scores a new customer"), &Value::Bool(true)));
}

#[tokio::test]
async fn a_failure_on_a_first_deployment_deletes_the_endpoint() {
    let world = deployed(None).await;
    world.test.replies.lock().unwrap().push_back(InvokeResult { status: 200, body: b"NaN".to_vec() });

    let outcome = invoke(&world).await;

    assert!(matches!(outcome, JobOutcome::Failed { ref message, .. } if message.contains("response lacks \"0.\"")), "{outcome:?}");
    assert!(world.test.endpoint(ENDPOINT).is_none(), "no previous config: the endpoint is deleted");
    assert!(endpoint_calls(&world).contains(&format!("DeleteEndpoint {ENDPOINT}")));
}

#[tokio::test]
async fn a_rollback_that_fails_leaves_the_version_rejected_and_names_the_failing_cases() {
    let world = deployed(Some(PREVIOUS)).await;
    world.test.replies.lock().unwrap().push_back(InvokeResult { status: 500, body: b"model error".to_vec() });
    world.test.fault("UpdateEndpoint", Fault::Fail(PortError::new("UpdateEndpoint", FailureKind::Terminal, "AccessDeniedException")));

    let outcome = invoke(&world).await;

    let JobOutcome::Failed { error_type, message } = outcome else { panic!("{outcome:?}") };
    assert_eq!(error_type, "Rejected.TestsFailed");
    assert!(message.contains("scores a typical customer: status 500, expected 200"), "{message}");
    assert!(message.contains(&format!("NOT DONE, to do by hand: roll {ENDPOINT} back (UpdateEndpoint failed: AccessDeniedException)")), "{message}");
    assert_eq!(central_status(&world), Some(ApprovalStatus::Rejected));
    assert_eq!(world.audit_actions(), ["tests-failed", "rejected-by-tests"]);
    assert_eq!(world.test.endpoint(ENDPOINT).unwrap().config, CONFIG, "still on the failing version, as the message says");
    assert_eq!(card_versions(&world).len(), 2, "the report reached the card");
    assert_eq!(world.ports.deployments.deployment(Stage::Test, ENDPOINT).await.unwrap().unwrap().state, DeploymentState::InService);
}

#[tokio::test]
async fn a_rejection_that_fails_still_rolls_the_endpoint_back() {
    let world = deployed(Some(PREVIOUS)).await;
    world.test.replies.lock().unwrap().push_back(InvokeResult { status: 500, body: b"model error".to_vec() });
    world.central.deny_approvals.store(true, std::sync::atomic::Ordering::SeqCst);

    let outcome = invoke(&world).await;

    let JobOutcome::Failed { message, .. } = outcome else { panic!("{outcome:?}") };
    assert!(message.contains("scores a typical customer: status 500"), "{message}");
    assert!(message.contains(&format!("rolled back to {PREVIOUS}")), "{message}");
    assert!(message.contains(&format!("NOT DONE, to do by hand: mark {} Rejected (UpdateModelPackage failed", world.package)), "{message}");
    assert!(endpoint_calls(&world).contains(&format!("UpdateEndpoint {ENDPOINT} {PREVIOUS} direct")));
    assert_eq!(world.audit_actions(), ["tests-failed", "rolled-back"]);
}

#[tokio::test]
async fn an_endpoint_no_longer_on_the_versions_config_is_not_tested_nor_touched() {
    let rolled_back = deployed(Some(PREVIOUS)).await;
    rolled_back.test.create_endpoint_for_test(ENDPOINT, PREVIOUS);
    let deleted = deployed(None).await;
    deleted.test.endpoints.lock().unwrap().clear();
    let updating = deployed(Some(PREVIOUS)).await;
    updating.test.endpoints.lock().unwrap().get_mut(ENDPOINT).unwrap().status = EndpointStatus::Updating;

    for (world, found) in [(&rolled_back, format!("InService on {PREVIOUS}")), (&deleted, "absent".to_owned()), (&updating, format!("Updating on {CONFIG}"))] {
        let before = world.test.endpoint(ENDPOINT).map(|e| (e.status, e.config));
        world.test.replies.lock().unwrap().push_back(InvokeResult { status: 200, body: b"0.9".to_vec() });

        let outcome = invoke(world).await;

        let JobOutcome::Failed { error_type, message } = outcome else { panic!("{outcome:?}") };
        assert_eq!(error_type, "Rejected.EndpointNotUnderTest");
        assert!(message.contains(&format!("endpoint {ENDPOINT} is {found}, not InService on {CONFIG}")), "{message}");
        assert!(message.contains("nothing was tested") && message.contains("run DeployTest again"), "{message}");
        assert_eq!(world.test.replies.lock().unwrap().len(), 1, "no case ran");
        assert!(endpoint_calls(world).is_empty(), "the endpoint is not touched");
        assert_eq!(world.test.endpoint(ENDPOINT).map(|e| (e.status, e.config)), before);
        assert_eq!(central_status(world), Some(ApprovalStatus::Approved));
        assert!(world.audit_actions().is_empty() && world.store.keys_in(DEPLOY_WORLD_EVIDENCE_BUCKET).is_empty());
    }
}

#[tokio::test]
async fn a_throttled_invocation_is_no_failed_case_the_job_comes_back_and_tests_again() {
    let world = deployed(Some(PREVIOUS)).await;
    world.test.fault("InvokeEndpoint", throttled());

    let outcome = invoke(&world).await;

    let JobOutcome::Continuing { continuation, summary } = outcome else { panic!("{outcome:?}") };
    assert!(summary.contains("will test again") && summary.contains("ThrottlingException"), "{summary}");
    assert!(world.last_answer().succeeded && world.last_answer().continuation.is_some());
    assert!(world.last_answer().variables.is_empty(), "CodePipeline takes no output variables with a continuation token");
    assert_eq!(central_status(&world), Some(ApprovalStatus::Approved));
    assert!(endpoint_calls(&world).is_empty() && world.audit_actions().is_empty());
    assert!(world.store.bytes(&report_uri(JOB_ID)).is_none(), "no verdict, no report");

    let mut next = test_job();
    next["CodePipeline.job"]["id"] = "f41c2a9d-second".into();
    next["CodePipeline.job"]["data"]["continuationToken"] = continuation.into();
    let outcome = invoke_with(&world, next, Context::default()).await;

    assert!(matches!(outcome, JobOutcome::Succeeded { ref summary, .. } if summary.contains("2/2 test cases passed")), "{outcome:?}");
    assert_eq!(world.audit_actions(), ["tests-passed"]);
    let answer = world.last_answer();
    assert!(answer.variables["ReportKey"].ends_with("/test-f41c2a9d-second-attempt-1.json"), "the report of the run that passed: {:?}", answer.variables);
}

#[tokio::test]
async fn a_refused_invocation_fails_the_job_without_judging_the_model() {
    let world = deployed(Some(PREVIOUS)).await;
    world.test.fault("InvokeEndpoint", Fault::Fail(PortError::new("InvokeEndpoint", FailureKind::Terminal, "AccessDeniedException")));

    let outcome = invoke(&world).await;

    let JobOutcome::Failed { error_type, message } = outcome else { panic!("{outcome:?}") };
    assert_eq!((error_type.as_str(), message.as_str()), ("Rejected.InvokeEndpoint", "InvokeEndpoint failed: AccessDeniedException"));
    assert_eq!(central_status(&world), Some(ApprovalStatus::Approved));
    assert!(endpoint_calls(&world).is_empty() && world.audit_actions().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_hanging_endpoint_fails_its_case_at_the_latency_bound() {
    let world = deployed(Some(PREVIOUS)).await;
    world.test.fault("InvokeEndpoint", Fault::Hang);

    let outcome = invoke(&world).await;

    let JobOutcome::Failed { error_type, message } = outcome else { panic!("{outcome:?}") };
    assert_eq!(error_type, "Rejected.TestsFailed");
    assert!(message.contains("1 of 2 test cases failed") && message.contains("scores a typical customer: no answer within 2000 ms"), "{message}");
    let case = &report(&world)["cases"][0];
    assert_eq!(case["passed"].as_bool(), Some(false));
    assert!((2000..2100).contains(&case["latency_ms"].as_u64().unwrap()), "{case}");
    assert!(endpoint_calls(&world).contains(&format!("UpdateEndpoint {ENDPOINT} {PREVIOUS} direct")));
}

#[tokio::test(start_paused = true)]
async fn a_hung_call_before_the_verdict_still_answers_the_job_before_the_deadline() {
    let world = deployed(Some(PREVIOUS)).await;
    world.test.fault("DescribeEndpoint", Fault::Hang);
    let started = tokio::time::Instant::now();

    let outcome = invoke_with(&world, test_job(), ending_in(60)).await;

    assert!(started.elapsed() < std::time::Duration::from_secs(60), "answered after the deadline: {:?}", started.elapsed());
    let JobOutcome::Continuing { summary, .. } = outcome else { panic!("{outcome:?}") };
    assert!(summary.contains("ran out of time while testing"), "{summary}");
    assert_eq!(world.last_answer().job_id, JOB_ID);
    assert_eq!(central_status(&world), Some(ApprovalStatus::Approved));
    assert!(endpoint_calls(&world).is_empty());
}

#[tokio::test]
async fn cases_that_cannot_finish_before_the_deadline_fail_the_job_untested() {
    let world = deployed(Some(PREVIOUS)).await;
    world.test.replies.lock().unwrap().push_back(InvokeResult { status: 200, body: b"0.9".to_vec() });

    let outcome = invoke_with(&world, test_job(), ending_in(20)).await;

    let JobOutcome::Failed { error_type, message } = outcome else { panic!("{outcome:?}") };
    assert_eq!(error_type, "Rejected.TestsOutlastInvocation");
    assert!(message.contains("may take 14000 ms") && message.contains("raise test-model's timeout"), "{message}");
    assert_eq!(world.test.replies.lock().unwrap().len(), 1, "no case ran");
    assert_eq!(central_status(&world), Some(ApprovalStatus::Approved));
    assert!(endpoint_calls(&world).is_empty() && world.audit_actions().is_empty());
}

#[tokio::test]
async fn cases_that_leave_no_time_to_reach_the_endpoint_fail_the_job_untested() {
    let world = deployed(Some(PREVIOUS)).await;
    world.test.replies.lock().unwrap().push_back(InvokeResult { status: 200, body: b"0.9".to_vec() });

    // 35 s to answer, 30 s of it kept for the aftermath: the cases' 4 s would fit, not with the
    // deploy role's session and the endpoint check before them.
    let outcome = invoke_with(&world, test_job(), ending_in(40)).await;

    let JobOutcome::Failed { error_type, message } = outcome else { panic!("{outcome:?}") };
    assert_eq!(error_type, "Rejected.TestsOutlastInvocation", "{message}");
    assert_eq!(world.test.replies.lock().unwrap().len(), 1, "no case ran");
    assert!(world.audit_actions().is_empty());
    assert_eq!(central_status(&world), Some(ApprovalStatus::Approved));
}

#[tokio::test(start_paused = true)]
async fn running_out_of_time_twice_in_a_row_fails_the_job_instead_of_looping_until_the_pipeline_times_out() {
    let world = deployed(Some(PREVIOUS)).await;
    world.test.fault("DescribeEndpoint", Fault::Hang);
    world.test.fault("DescribeEndpoint", Fault::Hang);
    let mut job = test_job();

    let first = invoke_with(&world, job.clone(), ending_in(60)).await;

    let JobOutcome::Continuing { continuation, summary } = first else { panic!("{first:?}") };
    assert!(summary.contains("ran out of time while testing"), "{summary}");
    job["CodePipeline.job"]["id"] = "f41c2a9d-second".into();
    job["CodePipeline.job"]["data"]["continuationToken"] = continuation.into();
    let second = invoke_with(&world, job, ending_in(60)).await;

    let JobOutcome::Failed { error_type, message } = second else { panic!("{second:?}") };
    assert_eq!(error_type, "Rejected.OutOfTimeAgain");
    assert!(message.contains("2 invocations in a row ran out of time, the last while testing"), "{message}");
    assert_eq!(world.last_answer().job_id, "f41c2a9d-second");
    assert_eq!(central_status(&world), Some(ApprovalStatus::Approved), "no verdict: the version is not judged");
    assert!(endpoint_calls(&world).is_empty() && world.audit_actions().is_empty());
}
