//! test-model's tokens, verdicts and evidence against the fakes.

use async_trait::async_trait;
use serde_json::json;

use super::*;
use crate::deployment::testing::{deploy, job_event};
use crate::fakes::{world_execution, DeployWorld, DEPLOY_WORLD_EVIDENCE_BUCKET};
use crate::ports::{FailureKind, Notifier, PortError, PortResult, TestRecords};

/// An approval topic that refuses its first message as throttled, then takes them.
#[derive(Default)]
struct ThrottledOnce {
    sent: std::sync::Mutex<Vec<String>>,
    refused: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Notifier for ThrottledOnce {
    async fn notify(&self, _subject: &str, message: &str) -> PortResult<()> {
        if !self.refused.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(PortError::new("Publish", FailureKind::Retryable, "Throttling: Rate exceeded"));
        }
        self.sent.lock().unwrap().push(message.to_owned());
        Ok(())
    }
}

/// A ledger whose first verdict write is lost to a timeout, as when an invocation dies after
/// its report is stored.
struct LosesFirstVerdict {
    inner: Arc<crate::fakes::FakeLedger>,
    lost: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl TestRecords for LosesFirstVerdict {
    async fn record_test(&self, record: &TestRecord) -> PortResult<()> {
        if !self.lost.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(PortError::new("PutItem", FailureKind::Retryable, "RequestTimeout"));
        }
        self.inner.record_test(record).await
    }
    async fn test_record(&self, execution_id: &str, package: &ModelPackageArn, stage: Stage) -> PortResult<Option<TestRecord>> {
        self.inner.test_record(execution_id, package, stage).await
    }
}

fn deadline() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::minutes(5)
}

async fn test_job(ports: &DeployPorts, world: &DeployWorld, id: &str, token: Option<&str>) -> JobOutcome {
    handle_test_job(ports, &world.config, &job_event(id, Stage::Test, &world.package, token), deadline()).await.unwrap()
}

/// A world whose version is deployed on the test endpoint.
async fn deployed() -> DeployWorld {
    let world = DeployWorld::new(0);
    assert!(matches!(deploy(&world, &world.package, Stage::Test).await, JobOutcome::Succeeded { .. }));
    world
}

fn card_versions(world: &DeployWorld) -> usize {
    world.cards.cards.lock().unwrap()[&crate::domain::card::card_name(&world.package)].len()
}

fn recorded(world: &DeployWorld) -> Option<TestRecord> {
    world.ledger.tests.lock().unwrap().values().find(|r| r.package == world.package).cloned()
}

fn refusals(world: &DeployWorld) -> Vec<Value> {
    world.ledger.audit.lock().unwrap().values().filter(|e| e.action == AuditAction::Refused).map(|e| e.detail.clone()).collect()
}

fn uri(key: &str) -> S3Uri {
    S3Uri::new(DEPLOY_WORLD_EVIDENCE_BUCKET, key).unwrap()
}

/// What test-model did to the outside: (card versions, messages to the approvers, reports stored).
fn effects(world: &DeployWorld) -> (usize, usize, usize) {
    (card_versions(world), world.approvers.sent.lock().unwrap().len(), world.store.keys_in(DEPLOY_WORLD_EVIDENCE_BUCKET).len())
}

#[tokio::test]
async fn a_transient_failure_after_a_pass_finishes_recording_it_without_testing_again_nor_repeating_a_step() {
    let world = deployed().await;
    let topic = Arc::new(ThrottledOnce::default());
    let ports = DeployPorts { approvers: topic.clone(), ..world.ports.clone() };

    let first = test_job(&ports, &world, "tests-1", None).await;

    let JobOutcome::Continuing { continuation, summary } = first else { panic!("{first:?}") };
    assert!(summary.contains("the tests passed; will finish recording it") && summary.contains("Throttling"), "{summary}");
    assert_eq!((card_versions(&world), topic.sent.lock().unwrap().len()), (2, 0));
    // The next job must not test again: the endpoint now refuses every invocation.
    world.test.fault("InvokeEndpoint", crate::fakes::Fault::Fail(PortError::new("InvokeEndpoint", FailureKind::Terminal, "AccessDeniedException")));
    let second = test_job(&ports, &world, "tests-2", Some(&continuation)).await;

    let JobOutcome::Succeeded { variables, .. } = second else { panic!("{second:?}") };
    assert_eq!(variables["ReportKey"], "reports/churn-prediction-111111111111/1/test-tests-1-attempt-1.json", "the report of the run that passed");
    let record = recorded(&world).unwrap();
    assert_eq!((record.job_id.as_str(), record.passed, record.execution_id), ("tests-1", true, world_execution(&world.package)));
    assert_eq!(card_versions(&world), 2, "the card took the report once");
    let sent = topic.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "the approvers are told once");
    assert!(sent[0].contains("test-tests-1-attempt-1.json") && sent[0].contains(&record.report_sha256), "{}", sent[0]);
    assert_eq!(world.audit_actions().iter().filter(|a| *a == "tests-passed").count(), 1);
    assert_eq!(world.test.faults.lock().unwrap().len(), 1, "the endpoint was not invoked again");
}

#[tokio::test]
async fn a_forged_passed_token_with_no_verdict_in_the_ledger_is_refused_touches_nothing_and_is_audited() {
    let world = deployed().await;
    let before = effects(&world);
    let report = uri("reports/churn-prediction-111111111111/1/test-x-attempt-1.json");
    let forged = Pass { report, version: "v1".into(), sha256: "0".repeat(64), tested_by: "x".into() };
    let token = Progress { phase: Phase::Passed(forged), out_of_time: 0 }.token();

    let outcome = test_job(&world.ports, &world, "tests-1", Some(&token)).await;

    let JobOutcome::Failed { error_type, message } = outcome else { panic!("{outcome:?}") };
    assert_eq!(error_type, "Rejected.ForgedContinuation");
    assert!(message.contains(&format!("the ledger holds no test record of execution {}", world_execution(&world.package))), "{message}");
    assert_eq!(effects(&world), before, "no card update, no approval request, no report");
    assert!(world.last_answer().variables.is_empty(), "no output variables for the approval");
    assert!(recorded(&world).is_none() && !world.audit_actions().contains(&"tests-passed".to_owned()));
    let refused = refusals(&world);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["gate"], "test-continuation");
    assert!(refused[0]["reason"].as_str().unwrap().contains("a token is the caller's word"), "{}", refused[0]);
}

#[tokio::test]
async fn a_passed_token_that_names_another_report_than_the_ledgers_pass_is_refused() {
    let world = deployed().await;
    let JobOutcome::Succeeded { .. } = test_job(&world.ports, &world, "tests-1", None).await else { panic!("the tests pass") };
    let record = recorded(&world).unwrap();
    let before = effects(&world);
    world.approvers.sent.lock().unwrap().clear();
    // A report the caller wrote itself, with a digest of its own, under the next attempt key.
    let forged_uri = uri("reports/churn-prediction-111111111111/1/test-tests-1-attempt-2.json");
    let forged_version = world.store.put_object(&forged_uri, b"{\"passed\": 99}".to_vec());
    let forged =
        Pass { report: forged_uri, version: forged_version, sha256: crate::domain::naming::hex_sha256(b"{\"passed\": 99}"), tested_by: "tests-1".into() };
    let token = Progress { phase: Phase::Passed(forged), out_of_time: 0 }.token();

    let outcome = test_job(&world.ports, &world, "tests-2", Some(&token)).await;

    assert!(matches!(outcome, JobOutcome::Failed { ref error_type, .. } if error_type == "Rejected.ForgedContinuation"), "{outcome:?}");
    assert_eq!(card_versions(&world), before.0, "the card is not updated");
    assert!(world.approvers.sent.lock().unwrap().is_empty(), "no approval request");
    assert_eq!(recorded(&world), Some(record), "the ledger keeps its own verdict");
    assert!(refusals(&world)[0]["reason"].as_str().unwrap().contains("not the token's"));
}

#[tokio::test]
async fn a_retried_job_writes_its_report_under_a_new_attempt_key_and_the_first_report_stays_as_it_was() {
    let world = deployed().await;
    let ports = DeployPorts { tests: Arc::new(LosesFirstVerdict { inner: world.ledger.clone(), lost: Default::default() }), ..world.ports.clone() };
    let first_key = uri("reports/churn-prediction-111111111111/1/test-tests-1-attempt-1.json");

    let first = test_job(&ports, &world, "tests-1", None).await;
    assert!(matches!(first, JobOutcome::Continuing { .. }), "the verdict was not recorded: {first:?}");
    let first_report = world.store.versions(&first_key);
    assert_eq!(first_report.len(), 1);
    // Lambda delivers the same job again.
    let again = test_job(&ports, &world, "tests-1", None).await;

    let JobOutcome::Succeeded { variables, .. } = again else { panic!("{again:?}") };
    let second_key = uri("reports/churn-prediction-111111111111/1/test-tests-1-attempt-2.json");
    assert_eq!(variables["ReportKey"], second_key.key());
    assert_eq!(world.store.versions(&first_key), first_report, "the first attempt's report is unchanged, in one version");
    let record = recorded(&world).unwrap();
    let (version, bytes) = world.store.versions(&second_key).pop().unwrap();
    assert_eq!((&record.report, record.report_version.as_deref()), (&second_key, Some(version.as_str())));
    assert_eq!(record.report_sha256, crate::domain::naming::hex_sha256(&bytes), "the ledger holds the digest of the stored bytes");
    let retained = world.store.retained_until(&second_key, &version).expect("locked");
    assert!(retained > Utc::now() + chrono::Duration::days(2554), "locked for the configured retention: {retained}");
}

#[tokio::test]
async fn a_job_delivered_again_after_a_recorded_failure_keeps_the_first_verdict_without_testing() {
    let world = deployed().await;
    world.test.replies.lock().unwrap().push_back(crate::ports::InvokeResult { status: 500, body: b"model error".to_vec() });
    let failed = test_job(&world.ports, &world, "tests-1", None).await;
    assert!(matches!(failed, JobOutcome::Failed { ref error_type, .. } if error_type == "Rejected.TestsFailed"), "{failed:?}");
    let first = recorded(&world).unwrap();
    assert!(!first.passed);
    let calls = world.test.calls.lock().unwrap().len();

    let again = test_job(&world.ports, &world, "tests-2", None).await;

    let JobOutcome::Failed { error_type, message } = again else { panic!("{again:?}") };
    assert_eq!(error_type, "Rejected.TestsFailed");
    assert!(message.contains("failed already (job tests-1") && message.contains("the first verdict stands"), "{message}");
    assert_eq!(world.test.calls.lock().unwrap().len(), calls, "nothing was tested");
    assert_eq!(recorded(&world), Some(first));
}

#[tokio::test]
async fn a_report_written_over_after_the_pass_stops_the_approval_request() {
    let world = deployed().await;
    let ports = DeployPorts { approvers: Arc::new(ThrottledOnce::default()), ..world.ports.clone() };
    let JobOutcome::Continuing { continuation, .. } = test_job(&ports, &world, "tests-1", None).await else { panic!("the approvers are throttled") };
    let record = recorded(&world).unwrap();
    // Someone who may write the bucket puts a new version over the key (versioning allows it
    // when no bucket policy forbids it): the key's link now shows other bytes.
    world.store.put_object(&record.report, b"{\"passed\": 2, \"failed\": 0, \"forged\": true}".to_vec());

    let outcome = test_job(&ports, &world, "tests-2", Some(&continuation)).await;

    let JobOutcome::Failed { error_type, message } = outcome else { panic!("{outcome:?}") };
    assert_eq!(error_type, "Rejected.EvidenceChanged");
    assert!(message.contains("someone wrote over the report"), "{message}");
    assert!(world.last_answer().variables.is_empty());
    assert_eq!(refusals(&world)[0]["gate"], "test-report");
}

#[tokio::test]
async fn a_card_that_describes_another_version_is_not_updated_and_the_pass_is_not_offered_for_approval() {
    let world = deployed().await;
    let other = "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-prediction-111111111111/2";
    let name = crate::domain::card::card_name(&world.package);
    let content = json!({ "model_package_details": { "model_package_arn": other } });
    world.cards.cards.lock().unwrap().insert(name.clone(), vec![content.clone()]);

    let outcome = test_job(&world.ports, &world, "tests-1", None).await;

    let JobOutcome::Failed { error_type, message } = outcome else { panic!("{outcome:?}") };
    assert_eq!(error_type, "Rejected.CardOfAnotherVersion");
    assert!(message.contains(&format!("the model card {name} describes {other}, not {}", world.package)), "{message}");
    assert_eq!(world.cards.cards.lock().unwrap()[&name], vec![content], "the card is as it was");
    assert!(world.approvers.sent.lock().unwrap().is_empty());
    assert_eq!(refusals(&world)[0]["gate"], "model-card");
    assert!(recorded(&world).is_some_and(|r| r.passed), "the verdict itself is recorded: the tests did pass");
}

#[tokio::test]
async fn a_version_the_service_never_promoted_or_promoted_without_a_fingerprint_is_not_tested() {
    for (unfingerprinted, expected) in [(false, "Rejected.NeverPromoted"), (true, "Rejected.ReleaseChanged")] {
        let world = deployed().await;
        if unfingerprinted {
            world.ledger.records.lock().unwrap().values_mut().for_each(|r| r.fingerprint = None);
        } else {
            world.ledger.promoted_from.lock().unwrap().clear();
        }
        let calls = world.test.calls.lock().unwrap().len();

        let outcome = test_job(&world.ports, &world, "tests-1", None).await;

        assert!(matches!(outcome, JobOutcome::Failed { ref error_type, .. } if error_type == expected), "{outcome:?}");
        assert_eq!(world.test.calls.lock().unwrap().len(), calls, "the test endpoint was not touched");
        assert_eq!(effects(&world), (1, 0, 0));
        assert!(recorded(&world).is_none());
        assert_eq!(refusals(&world)[0]["gate"], "test-model");
    }
}

#[tokio::test]
async fn a_test_job_codepipeline_is_not_running_or_a_changed_release_is_not_tested() {
    for attack in ["stopped", "revoked", "model-replaced"] {
        let world = deployed().await;
        world.pipeline_at(&world.package, crate::domain::pipeline::PipelineStage::TestModel);
        let expected = match attack {
            "stopped" => {
                world.runs.stopped.lock().unwrap().insert(crate::fakes::world_execution(&world.package), "stopped by hand".into());
                "Rejected.UnconfirmedJob"
            }
            "revoked" => {
                world.ledger.records.lock().unwrap().values_mut().for_each(|r| r.state = crate::domain::ledger::PromotionState::Revoked);
                "Rejected.NotPromoted"
            }
            _ => {
                world.store.put_object(&crate::fakes::WORLD_MODEL_DATA.parse().unwrap(), b"other weights".to_vec());
                "Rejected.ReleaseChanged"
            }
        };
        let calls = world.test.calls.lock().unwrap().len();

        let outcome = test_job(&world.ports, &world, "tests-1", None).await;

        assert!(matches!(outcome, JobOutcome::Failed { ref error_type, .. } if error_type == expected), "{attack}: {outcome:?}");
        assert_eq!(world.test.calls.lock().unwrap().len(), calls, "{attack}: the test endpoint was not touched");
        assert!(recorded(&world).is_none(), "{attack}: no verdict");
        assert!(world.approvers.sent.lock().unwrap().is_empty(), "{attack}: no one was told");
        assert_eq!(refusals(&world)[0]["gate"], "test-model");
    }
}

#[tokio::test]
async fn a_job_that_names_no_execution_is_refused_untested() {
    let world = deployed().await;
    let mut event = job_event("tests-1", Stage::Test, &world.package, None);
    let parameters = json!({ "stage": "test", "model_package_arn": world.package }).to_string();
    event["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] = parameters.into();

    let outcome = handle_test_job(&world.ports, &world.config, &event, deadline()).await.unwrap();

    assert!(matches!(outcome, JobOutcome::Failed { ref error_type, .. } if error_type == "Rejected.NoExecution"), "{outcome:?}");
    assert_eq!(effects(&world), (1, 0, 0));
    assert_eq!(refusals(&world)[0]["gate"], "pipeline-execution");
}

#[test]
fn a_token_of_the_earlier_format_still_means_testing_again_and_a_pass_fits_a_token() {
    let progress: Progress = serde_json::from_str(r#"{"phase":"retest"}"#).unwrap();
    assert_eq!(progress, Progress { phase: Phase::Retest, out_of_time: 0 });

    let group: crate::domain::ids::GroupName = "g".repeat(63).parse().unwrap();
    let package = ModelPackageArn::new("ap-southeast-5", &"222222222222".parse().unwrap(), &group, u32::MAX);
    let job = "f41c2a9d-83b7-4e65-a0d2-5b6c7e8f9a10";
    let report = report::report_uri(&"b".repeat(63), &package, job, 20).unwrap();
    let pass = Pass { report, version: "v".repeat(crate::domain::evidence::REPORT_VERSION_MAX), sha256: "f".repeat(64), tested_by: job.into() };
    let longest = Progress { phase: Phase::Passed(pass), out_of_time: u32::MAX };
    let token = longest.token();
    assert!(token.len() <= 2048, "CodePipeline takes continuation tokens of at most 2048 characters: {}", token.len());
    assert_eq!(serde_json::from_str::<Progress>(&token).unwrap(), longest);
}

#[test]
fn the_evidence_is_what_the_pipeline_definition_publishes_and_fits_its_longest_values() {
    let group: crate::domain::ids::GroupName = "g".repeat(63).parse().unwrap();
    let package = ModelPackageArn::new("ap-southeast-5", &"222222222222".parse().unwrap(), &group, u32::MAX);
    let job_id = "f41c2a9d-83b7-4e65-a0d2-5b6c7e8f9a10";
    let uri = report::report_uri(&"b".repeat(63), &package, job_id, 20).unwrap();
    let fingerprint = ReleaseFingerprint::of(b"release");
    let case = CaseResult { name: "c".into(), passed: true, status: Some(200), latency_ms: u64::MAX, failure: None };
    let report = TestReport {
        model_package_arn: package.to_string(),
        release_fingerprint: fingerprint.clone(),
        stage: "test".into(),
        endpoint: "e".into(),
        execution_id: "exec-1".into(),
        job_id: job_id.into(),
        tested_at: "2024-01-01T00:00:00Z".into(),
        passed: 10_000,
        failed: 0,
        cases: vec![case; 10_000],
    };
    let record = TestRecord {
        execution_id: "exec-1".into(),
        package: package.clone(),
        stage: Stage::Test,
        fingerprint: fingerprint.clone(),
        passed: true,
        job_id: job_id.into(),
        report: uri,
        report_version: Some("v".repeat(crate::domain::evidence::REPORT_VERSION_MAX)),
        report_sha256: "f".repeat(64),
        at: Utc::now(),
    };
    let confirmed = verdict::Confirmed { record, passed: 10_000, total: 10_000, slowest_ms: u64::MAX, report };

    let variables = evidence(&package, &confirmed);

    let limits = published_variables();
    assert_eq!(variables.keys().collect::<Vec<_>>(), limits.keys().collect::<Vec<_>>());
    for (name, value) in &variables {
        assert!(value.len() <= limits[name], "{name} is {} characters, more than {}: {value}", value.len(), limits[name]);
    }
    assert_eq!(limits["ReportVersion"], crate::domain::evidence::REPORT_VERSION_MAX, "the longest version id test-model publishes");
    assert_eq!(variables["ReportKey"], format!("reports/{group}/{}/test-{job_id}-attempt-20.json", u32::MAX));
    assert_eq!(variables["ReleaseFingerprint"], fingerprint.as_str());
    assert!(variables["ModelCardUrl"].ends_with(&format!("#/model-cards/{}", crate::domain::card::card_name(&package))), "{}", variables["ModelCardUrl"]);
    assert_eq!(variables["TestSummary"], format!("10000/10000 test cases passed, slowest {} ms", u64::MAX));
}
