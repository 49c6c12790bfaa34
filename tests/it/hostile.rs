//! The fault suite of promote-model against moto's server: a corpus of hostile and malformed
//! events, an injected AWS failure at every call of a promotion (refused, or taken effect with
//! its answer lost), a throttling storm, and a process killed in the middle of a multipart copy.
//!

use promotion_core::failure::Failure;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_sagemaker::types::{InferenceSpecification, ModelApprovalStatus, ModelPackageContainerDefinition};
use futures::StreamExt;
use lambda_runtime::{Context, LambdaEvent};
use promote_cli::local::{put_object, register_version};
use promotion_core::domain::copy::CopySettings;
use promotion_core::domain::ids::ModelPackageArn;
use promotion_core::domain::naming::{central_description, central_group_name};
use promotion_core::fakes::{BeforeCopy, HookedStore};
use promotion_core::ports::{FailureKind, PortError, PortResult, PromotePorts};
use promotion_core::promotion::{Outcome, PromoteError, PromotionSummary};
use promotion_tests::chaos::{Chaos, Fault};
use promotion_tests::{TestWorld, EMULATOR};
use serde_json::{json, Value};

const MIB: u64 = 1024 * 1024;
/// The lease of the deliveries here: short, so that a claim left by a failed attempt lapses fast.
const LEASE: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------------------
// Deliveries

async fn deliver_by(world: &TestWorld, ports: &PromotePorts, event: &Value, lease: Duration) -> Result<Outcome, PromoteError> {
    let mut context = Context::default();
    context.request_id = uuid::Uuid::new_v4().to_string();
    let deadline = chrono::Utc::now() + chrono::Duration::from_std(lease).expect("short lease");
    context.deadline = u64::try_from(deadline.timestamp_millis()).expect("after 1970");
    promote_model::handler(ports, &world.world.config, LambdaEvent::new(event.clone(), context)).await
}

/// Redelivers as EventBridge does after a retryable failure, until the event is handled.
/// Returns the outcome and the error types of the attempts that failed. `attempts` bounds the
/// deliveries that did work; those turned away by a live claim are bounded by time instead,
/// since a claim left by a failed attempt lapses only at that attempt's lease.
async fn redeliver_until_done(world: &TestWorld, ports: &PromotePorts, event: &Value, attempts: usize) -> (Outcome, Vec<String>) {
    let mut failures: Vec<String> = Vec::new();
    let mut last_claimant = Instant::now() - LEASE;
    loop {
        let worked = failures.iter().filter(|f| *f != IN_PROGRESS).count();
        assert!(worked < attempts, "not handled after {attempts} deliveries: {failures:?}");
        let started = Instant::now();
        match deliver_by(world, ports, event, LEASE).await {
            Ok(outcome) => return (outcome, failures),
            Err(error) => {
                assert!(error.is_retryable(), "a fault must leave a retryable error, got {}: {error}", error.error_type());
                if error.error_type() == IN_PROGRESS {
                    assert!(last_claimant.elapsed() < LEASE * 3, "a claim outlived its lease: {failures:?}");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                } else {
                    last_claimant = started;
                }
                failures.push(error.error_type());
            }
        }
    }
}

const IN_PROGRESS: &str = "Retryable.PromotionInProgress";

fn summary(outcome: Outcome) -> PromotionSummary {
    match outcome {
        Outcome::Promoted(summary) | Outcome::AlreadyPromoted(summary) => summary,
        other => panic!("expected a promotion, got {other:?}"),
    }
}

fn outcome_name(outcome: &Outcome) -> String {
    let value = serde_json::to_value(outcome).expect("outcome serializes");
    format!("Ok.{}", value["outcome"].as_str().unwrap_or("?"))
}

// ---------------------------------------------------------------------------------------------
// Sources and end states

/// Small artifacts in the dev bucket, uploaded once per world and named by many versions.
struct Sources {
    model: String,
    evaluation: String,
    constraints: String,
}

async fn small_sources(world: &TestWorld) -> Sources {
    let bucket = &world.world.names.dev_bucket;
    let model: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let evaluation = json!({"binary_classification_metrics": {"accuracy": {"value": 0.9}}}).to_string().into_bytes();
    let constraints = json!({"binary_classification_constraints": {"accuracy": {"threshold": 0.8}}}).to_string().into_bytes();
    Sources {
        model: put_object(world.dev(), bucket, "small/output/model.tar.gz", model).await.expect("upload"),
        evaluation: put_object(world.dev(), bucket, "small/output/evaluation.json", evaluation).await.expect("upload"),
        constraints: put_object(world.dev(), bucket, "small/output/constraints.json", constraints).await.expect("upload"),
    }
}

/// A version of a dev group of its own, approved: its promotion is the first into its central
/// group, as the fault-free reference run's is.
async fn approved_in_new_group(world: &TestWorld, sources: &Sources, label: &str) -> (ModelPackageArn, Value) {
    let group = format!("{label}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let arn = register_version(world.dev(), &group, &sources.model, Some((&sources.evaluation, &sources.constraints))).await.expect("register dev version");
    let event = world.decide(&arn, true).await;
    (arn, event)
}

/// What a promotion leaves, with names relative to its central group so that promotions into
/// different groups compare.
#[derive(Debug, Clone, PartialEq)]
struct EndState {
    central_versions: usize,
    versions_named_by_source: usize,
    statuses: Vec<String>,
    objects: Vec<String>,
    bytes_identical: bool,
    card_versions: usize,
    card_names_the_version: bool,
    card_has_metrics: bool,
    ledger_state: String,
    ledger_points_at_the_version: bool,
    ledger_card_version: Option<u32>,
    ledger_owner: Option<String>,
    open_uploads: usize,
}

async fn objects_under(world: &TestWorld, prefix: &str) -> Vec<String> {
    let listed = world.s3().list_objects_v2().bucket(&world.world.names.artifact_bucket).prefix(prefix).send().await.expect("list central objects");
    let mut keys: Vec<String> = listed.contents().iter().filter_map(|o| o.key()).map(|k| k.trim_start_matches(prefix).to_owned()).collect();
    keys.sort();
    keys
}

async fn end_state(world: &TestWorld, source: &ModelPackageArn) -> EndState {
    let group = central_group_name(source);
    let versions = world.central_versions(group.as_str()).await;
    let description = central_description(source);
    let record = world.ports.ledger.get(source).await.expect("ledger read").expect("a ledger record");
    let mut bytes_identical = !record.artifacts.is_empty();
    for artifact in &record.artifacts {
        bytes_identical &= world.object(&artifact.central).await == world.object(&artifact.source).await;
    }
    let cards = world.group_card_versions(group.as_str()).await;
    let only = versions.first().and_then(|v| v.model_package_arn()).map(str::to_owned);
    EndState {
        central_versions: versions.len(),
        versions_named_by_source: versions.iter().filter(|v| v.model_package_description() == Some(description.as_str())).count(),
        statuses: versions.iter().map(|v| v.model_approval_status().map(|s| s.as_str().to_owned()).unwrap_or_default()).collect(),
        objects: objects_under(world, &format!("{group}/")).await,
        bytes_identical,
        card_versions: cards.len(),
        card_names_the_version: cards.last().map(|(_, c)| c["model_package_details"]["model_package_arn"].as_str().map(str::to_owned)) == Some(only.clone()),
        card_has_metrics: cards.last().is_some_and(|(_, c)| c.get("evaluation_details").is_some()),
        ledger_state: record.state.as_str().to_owned(),
        ledger_points_at_the_version: record.central_package.as_ref().map(ToString::to_string) == only,
        ledger_card_version: record.card_version,
        ledger_owner: record.owner.clone(),
        open_uploads: world.open_multipart_uploads().await,
    }
}

// ---------------------------------------------------------------------------------------------
// Part 1: hostile and malformed events

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("hostile-events")
}

struct Case {
    name: String,
    why: String,
    expect: String,
    event: Value,
}

fn corpus_cases(vars: &[(&str, String)]) -> Vec<Case> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("corpus directory")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let mut text = std::fs::read_to_string(&path).expect("corpus file");
            for (name, value) in vars {
                text = text.replace(&format!("${{{name}}}"), value);
            }
            let case: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            Case {
                name: path.file_name().unwrap().to_string_lossy().into_owned(),
                why: case["why"].as_str().expect("why").to_owned(),
                expect: case["expect"].as_str().expect("expect").to_owned(),
                event: case["event"].clone(),
            }
        })
        .collect()
}

fn with(mut event: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    let target = if parent.is_empty() { &mut event } else { event.pointer_mut(parent).expect("parent exists") };
    target[key] = value;
    event
}

/// Everything a rejected event must leave as it was: the harness's account-wide snapshot, and
/// the versions, card versions and open uploads of the promoted group.
#[derive(Debug, PartialEq)]
struct AccountState {
    snapshot: promotion_tests::inspect::Snapshot,
    group_versions: usize,
    card_versions: usize,
    open_uploads: usize,
}

async fn account_state(world: &TestWorld, group: &str) -> AccountState {
    AccountState {
        snapshot: world.snapshot().await,
        group_versions: world.central_versions(group).await.len(),
        card_versions: world.group_card_versions(group).await.len(),
        open_uploads: world.open_multipart_uploads().await,
    }
}

/// Registers a dev version directly, with any containers (or none).
async fn register_raw(world: &TestWorld, group: &str, containers: Vec<ModelPackageContainerDefinition>) -> ModelPackageArn {
    let sagemaker = aws_sdk_sagemaker::Client::new(world.dev());
    if sagemaker.describe_model_package_group().model_package_group_name(group).send().await.is_err() {
        sagemaker.create_model_package_group().model_package_group_name(group).send().await.expect("dev group");
    }
    let spec = (!containers.is_empty()).then(|| {
        InferenceSpecification::builder().set_containers(Some(containers)).supported_content_types("text/csv").supported_response_mime_types("text/csv").build()
    });
    let created = sagemaker
        .create_model_package()
        .model_package_group_name(group)
        .model_approval_status(ModelApprovalStatus::PendingManualApproval)
        .set_inference_specification(spec)
        .send()
        .await
        .expect("register dev version");
    created.model_package_arn().expect("arn").parse().expect("valid arn")
}

/// The model data of the world's own dev version: an object that exists in an allowed bucket.
async fn source_model_uri(world: &TestWorld) -> String {
    let dev = aws_sdk_sagemaker::Client::new(world.dev());
    let described = dev.describe_model_package().model_package_name(world.world.dev_package.as_str()).send().await.expect("describe");
    let containers = described.inference_specification().expect("inference").containers();
    containers[0].model_data_url().expect("model data").to_owned()
}

fn container(model_data: &str) -> ModelPackageContainerDefinition {
    ModelPackageContainerDefinition::builder().image("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1").model_data_url(model_data).build()
}

#[tokio::test]
async fn hostile_events_get_a_typed_error_and_leave_the_state_unchanged() {
    let _alone = EMULATOR.write().await;
    let setup = Instant::now();
    let world = TestWorld::new().await;
    let source = world.world.dev_package.clone();
    let approval = world.decide(&source, true).await;
    let promoted = summary(world.deliver(&approval).await.expect("the genuine approval is promoted"));
    assert_eq!(world.published_events().await.len(), 1);
    let dev_bucket = world.world.names.dev_bucket.clone();
    let dev_group = world.world.names.dev_group.clone();

    // Versions the dev registry really holds, each hostile in its own way.
    let foreign = {
        let other_bucket = format!("{dev_bucket}-foreign");
        promote_cli::local::create_bucket(world.dev(), &other_bucket).await.expect("bucket");
        let model = put_object(world.dev(), &other_bucket, "model.tar.gz", vec![1; 1024]).await.expect("upload");
        let arn = register_version(world.dev(), &dev_group, &model, None).await.expect("register");
        world.decide(&arn, true).await
    };
    let many = {
        // 10,000 would do as well, but moto takes half a minute over them; 1,000 is 25 times the limit.
        let containers = (0..1_000).map(|i| container(&format!("s3://{dev_bucket}/many/{i}/model.tar.gz"))).collect();
        let arn = register_raw(&world, &format!("many-{dev_group}"), containers).await;
        world.decide(&arn, true).await
    };
    let path_key = {
        // A model data key that climbs out of its prefix: the S3 URI parser refuses it.
        let arn = register_raw(&world, &format!("dots-{dev_group}"), vec![container(&format!("s3://{dev_bucket}/a/../../etc/model.tar.gz"))]).await;
        world.decide(&arn, true).await
    };
    let no_containers = {
        let arn = register_raw(&world, &format!("empty-{dev_group}"), Vec::new()).await;
        world.decide(&arn, true).await
    };
    let pending_in_dev = {
        // A forged or stale approval: the registry still says PendingManualApproval.
        let arn = register_raw(&world, &format!("pending-{dev_group}"), vec![container(&source_model_uri(&world).await)]).await;
        promote_cli::local::approval_event(&arn, "Approved")
    };
    let older_replay = {
        let mut older = approval.clone();
        older["id"] = json!(uuid::Uuid::new_v4().to_string());
        older["time"] = json!("2020-01-01T00:00:00Z");
        older
    };
    let huge = "g".repeat(300 * 1024);
    let huge_digits = "1".repeat(300 * 1024);
    let version = source.version().to_string();
    let vars = [
        ("DEV_ACCOUNT", "111111111111".to_owned()),
        ("DEV_GROUP", dev_group.clone()),
        ("DEV_ARN", source.to_string()),
        ("VERSION", version),
        ("EVENT_ID", uuid::Uuid::new_v4().to_string()),
        ("NOW", chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    ];
    let mut cases = corpus_cases(&vars);
    assert!(cases.len() >= 30, "the corpus has {} cases", cases.len());
    let generated = [
        ("huge id (300 KB)", with(approval.clone(), "/id", json!(huge)), "Rejected.InvalidEvent"),
        ("huge group name (300 KB) in the detail", with(approval.clone(), "/detail/ModelPackageGroupName", json!(huge)), "Rejected.InvalidEvent"),
        (
            "huge group name (300 KB) in the ARN",
            with(
                with(approval.clone(), "/detail/ModelPackageArn", json!(format!("arn:aws:sagemaker:us-east-1:111111111111:model-package/{huge}/1"))),
                "/detail/ModelPackageGroupName",
                json!(null),
            ),
            "Rejected.InvalidEvent",
        ),
        ("huge account (300 KB of digits)", with(approval.clone(), "/account", json!(huge_digits)), "Rejected.InvalidEvent"),
        ("huge detail-type (300 KB)", with(approval.clone(), "/detail-type", json!(huge)), "Rejected.InvalidEvent"),
        ("huge source (300 KB)", with(approval.clone(), "/source", json!(huge)), "Rejected.InvalidEvent"),
        ("huge time (300 KB)", with(approval.clone(), "/time", json!(huge)), "Rejected.InvalidEvent"),
        ("source array of 100,000 entries", with(approval.clone(), "/source", json!(vec!["aws.sagemaker"; 100_000])), "Ok.already_promoted"),
        (
            "the replayed approval carrying 10,000 containers in its detail: the registry, not the event, names the artifacts",
            with(
                approval.clone(),
                "/detail/InferenceSpecification",
                json!({ "Containers": (0..10_000).map(|i| json!({"Image": "evil", "ModelDataUrl": format!("s3://attacker-bucket/{i}/model.tar.gz")})).collect::<Vec<_>>() }),
            ),
            "Ok.already_promoted",
        ),
        ("a huge unknown field (300 KB) on the replayed approval", with(approval.clone(), "/detail/SomethingNew", json!(huge)), "Ok.already_promoted"),
        ("the genuine approval replayed after its promotion", approval.clone(), "Ok.already_promoted"),
        ("an older approval of the same version, another event id", older_replay, "Ok.already_promoted"),
        ("a dev version naming a bucket not configured for its account", foreign, "Rejected.ForeignBucket"),
        ("a dev version naming 1,000 artifacts", many, "Rejected.TooManyArtifacts"),
        ("a dev version with no inference container", no_containers, "Rejected.NoContainers"),
        ("an approval event for a version still pending in the dev registry", pending_in_dev, "Rejected.NotApprovedInDev"),
        ("a dev version whose model data key climbs with ..", path_key, "Rejected.DescribeModelPackage"),
    ];
    for (name, event, expect) in generated {
        cases.push(Case { name: name.to_owned(), why: name.to_owned(), expect: expect.to_owned(), event });
    }
    let group = promoted.central_group.to_string();
    let before = account_state(&world, &group).await;
    assert_eq!(before.group_versions, 1);
    assert_eq!(before.snapshot.ledger.len(), 2, "one record and its pointer from the central version: {:?}", before.snapshot.ledger);
    assert_eq!(before.snapshot.audit.len(), 3, "one audit entry, its identity and its chain's head: {:?}", before.snapshot.audit);

    eprintln!("set-up took {:?}", setup.elapsed());
    let checks = Instant::now();
    let mut failures = Vec::new();
    for case in &cases {
        let started = Instant::now();
        let answer = world.deliver(&case.event).await;
        let elapsed = started.elapsed();
        let got = match &answer {
            Ok(outcome) => outcome_name(outcome),
            Err(error) => error.error_type(),
        };
        if got != case.expect {
            failures.push(format!("{} ({}): expected {}, got {got}: {answer:?}", case.name, case.why, case.expect));
            continue;
        }
        match answer {
            Err(error) => {
                let message = error.to_string();
                assert!(message.len() < 4096, "{}: an error message of {} bytes", case.name, message.len());
                assert!(!message.contains(&"g".repeat(200)) && !message.contains(&"1".repeat(200)), "{}: the error echoes huge input", case.name);
                assert!(!error.is_retryable(), "{}: a hostile event must not be retried", case.name);
            }
            Ok(Outcome::AlreadyPromoted(again)) => {
                assert_eq!(again.central_package, promoted.central_package, "{}", case.name);
                assert_eq!(again.artifacts, promoted.artifacts, "{}: artifacts come from the ledger, not the event", case.name);
            }
            Ok(_) => {}
        }
        assert!(elapsed < Duration::from_secs(10), "{} took {elapsed:?}", case.name);
        if elapsed > Duration::from_millis(300) {
            eprintln!("{} took {elapsed:?}", case.name);
        }
        let after = account_state(&world, &group).await;
        assert_eq!(after, before, "state changed after {} ({})", case.name, case.why);
    }
    eprintln!("{} cases took {:?}", cases.len(), checks.elapsed());
    assert!(failures.is_empty(), "{} of {} cases answered wrong:\n{}", failures.len(), cases.len(), failures.join("\n"));
    assert!(world.published_events().await.is_empty(), "a hostile event published something");
}

/// What the Lambda runtime does with a body that is not JSON: its deserialization into the
/// handler's `serde_json::Value` fails, so the handler never runs and the runtime reports the
/// invocation as failed (to the DLQ after the retries). Nothing here can reach AWS.
#[test]
fn bodies_that_are_not_json_are_refused_before_the_handler() {
    let mut bodies: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir().join("raw"))
        .expect("raw corpus")
        .map(|entry| {
            let path = entry.expect("entry").path();
            (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).expect("read"))
        })
        .collect();
    assert!(bodies.len() >= 8);
    let genuine = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/model-package-approved.json")).unwrap();
    for cut in [1, genuine.len() / 3, genuine.len() / 2, genuine.len() - 2] {
        bodies.push((format!("the reference approval cut at byte {cut}"), genuine[..cut].to_vec()));
    }
    bodies.push(("10,000 nested arrays".into(), format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes()));
    bodies.push(("10,000 nested objects".into(), format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000)).into_bytes()));
    for (name, body) in bodies {
        let parsed = serde_json::from_slice::<Value>(&body);
        assert!(parsed.is_err(), "{name} parsed as JSON: the runtime would hand it to the handler");
    }
    assert!(serde_json::from_slice::<Value>(&genuine).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Part 3: an injected fault at every call of a promotion

/// The calls of a fault-free promotion into a new group, and the state it leaves.
async fn reference_run(world: &TestWorld, sources: &Sources) -> (Vec<&'static str>, EndState) {
    let (source, event) = approved_in_new_group(world, sources, "reference").await;
    let counter = Chaos::counting();
    let outcome = deliver_by(world, &counter.ports(&world.ports), &event, LEASE).await.expect("fault-free promotion");
    assert!(matches!(outcome, Outcome::Promoted(_)), "{outcome:?}");
    let state = end_state(world, &source).await;
    assert_eq!((state.central_versions, state.versions_named_by_source, state.card_versions), (1, 1, 1), "{state:?}");
    assert_eq!(state.objects.len(), 3, "{state:?}");
    assert!(state.bytes_identical && state.card_names_the_version && state.ledger_points_at_the_version, "{state:?}");
    assert_eq!(state.ledger_state, "Promoted");
    (counter.calls(), state)
}

struct Scenario {
    position: usize,
    operation: &'static str,
    first: String,
    redeliveries: Vec<String>,
    state: EndState,
    source: ModelPackageArn,
}

async fn fault_then_redeliver(world: &TestWorld, sources: &Sources, calls: &[&'static str], position: usize, fault: Fault) -> Scenario {
    let (source, event) = approved_in_new_group(world, sources, &format!("at{position}")).await;
    let chaos = Chaos::failing([position], fault);
    let ports = chaos.ports(&world.ports);
    let first = deliver_by(world, &ports, &event, LEASE).await;
    assert_eq!(chaos.injected(), vec![(position, calls[position])], "the fault hits the same call as in the fault-free run");
    let first = match first {
        Ok(outcome) => outcome_name(&outcome),
        Err(error) => error.error_type(),
    };
    let (outcome, redeliveries) = redeliver_until_done(world, &ports, &event, 6).await;
    let promoted = summary(outcome);
    assert_eq!(promoted.source, source);
    Scenario { position, operation: calls[position], first, redeliveries, state: end_state(world, &source).await, source }
}

async fn a_fault_at_every_call_heals_on_redelivery(fault: Fault) {
    let _shared = EMULATOR.read().await;
    let world = TestWorld::new().await;
    let sources = small_sources(&world).await;
    let (calls, reference) = reference_run(&world, &sources).await;
    assert!(calls.len() >= 15, "a promotion makes {} port calls: {calls:?}", calls.len());

    let scenarios: Vec<Scenario> = futures::stream::iter(0..calls.len())
        .map(|position| fault_then_redeliver(&world, &sources, &calls, position, fault))
        .buffer_unordered(4)
        .collect()
        .await;

    let mut report = Vec::new();
    for scenario in &scenarios {
        let Scenario { position, operation, first, redeliveries, state, .. } = scenario;
        report.push(format!("{fault:?} at call {position} ({operation}): first delivery {first}, then {redeliveries:?}"));
        assert!(first.starts_with("Retryable."), "{fault:?} at call {position} ({operation}) answered {first}");
        assert_eq!(*state, reference, "{fault:?} at call {position} ({operation}): the end state differs from the fault-free run");
    }
    let events = world.published_events().await;
    for scenario in &scenarios {
        let published = events.iter().filter(|e| e["detail"]["source"] == scenario.source.to_string()).count();
        assert!(published >= 1, "no ModelPromoted for the fault at call {}", scenario.position);
        if published > 1 {
            report.push(format!("{fault:?} at call {} ({}): ModelPromoted published {published} times", scenario.position, scenario.operation));
        }
    }
    eprintln!("{}", report.join("\n"));
}

#[tokio::test]
async fn a_refused_call_at_every_step_of_a_promotion_heals_on_redelivery() {
    a_fault_at_every_call_heals_on_redelivery(Fault::Refused).await;
}

#[tokio::test]
async fn a_lost_answer_at_every_step_of_a_promotion_heals_on_redelivery() {
    a_fault_at_every_call_heals_on_redelivery(Fault::AnswerLost).await;
}

#[tokio::test]
async fn a_throttling_storm_over_many_deliveries_still_ends_in_one_version() {
    let _shared = EMULATOR.read().await;
    let world = TestWorld::new().await;
    let sources = small_sources(&world).await;
    let (calls, reference) = reference_run(&world, &sources).await;
    for (storm, fault) in
        [((2..2 * calls.len()).step_by(2).collect::<Vec<_>>(), Fault::Refused), ((1..calls.len() * 2).step_by(3).collect(), Fault::AnswerLost)]
    {
        let (source, event) = approved_in_new_group(&world, &sources, "storm").await;
        let chaos = Chaos::failing(storm, fault);
        let ports = chaos.ports(&world.ports);
        let (outcome, failures) = redeliver_until_done(&world, &ports, &event, 40).await;
        summary(outcome);
        assert!(failures.len() >= 3, "the storm failed only {} deliveries", failures.len());
        assert_eq!(end_state(&world, &source).await, reference, "after a {fault:?} storm: {} failed deliveries {failures:?}", failures.len());
        eprintln!("{fault:?} storm: {} injected faults, {} failed deliveries", chaos.injected().len(), failures.len());
    }
}

/// A defect this suite found: the audit entry of a promotion is written after the ledger marks
/// the promotion done, so a failure of that last write (or a lost answer of the write before it)
/// is never repaired: every redelivery finds the record Promoted and answers AlreadyPromoted.
#[tokio::test]
async fn a_failed_audit_write_is_repaired_by_redelivery() {
    let _shared = EMULATOR.read().await;
    let world = TestWorld::new().await;
    let sources = small_sources(&world).await;
    let (calls, _) = reference_run(&world, &sources).await;
    // The promotion's audit entry is written with its final record, in one transaction.
    let append = calls.iter().rposition(|c| *c == "Ledger.finish" || *c == "Ledger.append").expect("the promotion writes its audit entry");
    let scenario = fault_then_redeliver(&world, &sources, &calls, append, Fault::Refused).await;
    let history = world.ports.audit.history(&scenario.source).await.expect("history");
    assert!(
        history.iter().any(|entry| entry.action == "promoted"),
        "after {} then {:?}, the audit trail of {} lacks its promotion: {history:?}",
        scenario.first,
        scenario.redeliveries,
        scenario.source
    );
}

// ---------------------------------------------------------------------------------------------
// Part 4: a process killed in the middle of a multipart copy

/// `UploadPartCopy` of part 2 answers an error.
struct FailingPart;

#[async_trait]
impl BeforeCopy for FailingPart {
    async fn before_copy(&self, part: Option<i32>) -> PortResult<()> {
        match part {
            Some(2) => Err(PortError::new("UploadPartCopy", FailureKind::Retryable, "SlowDown (injected)")),
            _ => Ok(()),
        }
    }
}

/// A model of `size` bytes over an 8 MiB threshold, copied in 5 MiB parts.
async fn multipart_world(size: u64, concurrency: usize) -> (TestWorld, ModelPackageArn, Value, Vec<u8>) {
    let copy = CopySettings { multipart_threshold: 8 * MIB, part_size: 5 * MIB, concurrency };
    let world = TestWorld::with_copy_settings(copy).await;
    let bytes: Vec<u8> = (0..size).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    let model = put_object(world.dev(), &world.world.names.dev_bucket, "big/model.tar.gz", bytes.clone()).await.expect("upload");
    let arn = register_version(world.dev(), &world.world.names.dev_group, &model, None).await.expect("register");
    let event = world.decide(&arn, true).await;
    (world, arn, event, bytes)
}

async fn completes_with_identical_bytes(world: &TestWorld, source: &ModelPackageArn, event: &Value, bytes: &[u8]) {
    let (outcome, failures) = redeliver_until_done(world, &world.ports, event, 4).await;
    assert!(failures.is_empty(), "the next delivery after the lease completes at once: {failures:?}");
    let promoted = summary(outcome);
    let model = &promoted.artifacts[0];
    // moto stores no composite checksum for an UploadPartCopy upload (see README), so the bytes
    // themselves are the proof here; the fakes check the composite checksum.
    assert_eq!(model.size, bytes.len() as u64);
    assert!(world.object(&model.central).await == bytes, "the copy differs from the source");
    let state = end_state(world, source).await;
    assert_eq!((state.central_versions, state.card_versions, state.ledger_state.as_str()), (1, 1, "Promoted"), "{state:?}");
}

#[tokio::test]
async fn a_failed_part_copy_aborts_its_upload_and_the_next_delivery_completes() {
    let _shared = EMULATOR.read().await;
    let (world, source, event, bytes) = multipart_world(13 * MIB + 4321, 2).await;
    let mut failing = world.ports.clone();
    failing.artifacts = Arc::new(HookedStore { inner: world.ports.artifacts.clone(), hook: FailingPart });

    let error = deliver_by(&world, &failing, &event, LEASE).await.expect_err("part 2 fails");

    assert_eq!(error.error_type(), "Retryable.UploadPartCopy");
    assert_eq!(world.open_multipart_uploads().await, 0, "the failed upload is aborted");
    assert!(objects_under(&world, "").await.is_empty(), "nothing half-copied is visible");
    assert!(world.central_versions(central_group_name(&source).as_str()).await.is_empty());
    completes_with_identical_bytes(&world, &source, &event, &bytes).await;
    assert_eq!(world.open_multipart_uploads().await, 0);
}

/// Starts promote-model in a process of its own (`deliver-once`, wired as the Lambda is) on
/// `event`, with a deadline `lease` away, which bounds its claim.
async fn spawn_delivery(world: &TestWorld, event: &Value, lease: Duration) -> std::process::Child {
    let event_file = std::env::temp_dir().join(format!("deliver-once-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&event_file, event.to_string()).expect("event file");
    let copy = &world.world.config.copy;
    let exports = world.world.env_file().await.expect("env");
    let env = exports.lines().filter_map(|line| line.strip_prefix("export ")?.split_once('=')).map(|(name, value)| (name, value.trim_matches('\'')));
    std::process::Command::new(env!("CARGO_BIN_EXE_deliver-once"))
        .arg(&event_file)
        .arg(lease.as_secs().to_string())
        .env_clear()
        .envs(env)
        .env("MULTIPART_THRESHOLD_BYTES", copy.multipart_threshold.to_string())
        .env("COPY_PART_SIZE_BYTES", copy.part_size.to_string())
        .env("COPY_CONCURRENCY", copy.concurrency.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn deliver-once")
}

/// A promote-model process killed with SIGKILL while it copies parts: no code of it runs after
/// that, so its upload stays open and its claim stays until its lease. The next delivery after
/// the lease aborts the orphan upload (its key is the version's own) and copies afresh; the
/// bucket's lifecycle rule is only the backstop.
#[tokio::test]
async fn a_process_killed_mid_multipart_copy_is_completed_by_the_next_delivery() {
    let _shared = EMULATOR.read().await;
    // Eight parts one at a time: moto reads the whole source for each, so the copy takes long
    // enough for the kill to land in the middle of it.
    let (world, source, event, bytes) = multipart_world(40 * MIB + 777, 1).await;
    let started = Instant::now();
    let mut process = spawn_delivery(&world, &event, Duration::from_secs(2)).await;
    while world.open_multipart_uploads().await == 0 {
        if let Some(status) = process.try_wait().expect("child status") {
            panic!("the delivery ended ({status}) before it could be killed mid-copy");
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no multipart upload began within a minute");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    process.kill().expect("SIGKILL");
    let status = process.wait().expect("reaped");
    assert!(!status.success(), "killed, not finished: {status}");

    assert_eq!(world.open_multipart_uploads().await, 1, "the killed process leaves its upload open");
    assert!(world.central_versions(central_group_name(&source).as_str()).await.is_empty());
    let claim = world.ports.ledger.get(&source).await.expect("ledger").expect("the killed process claimed the version");
    assert_eq!(claim.state.as_str(), "InProgress");
    let lapses_in = claim.lease_until.expect("a lease") - chrono::Utc::now();
    tokio::time::sleep(lapses_in.to_std().unwrap_or_default() + Duration::from_millis(100)).await;

    completes_with_identical_bytes(&world, &source, &event, &bytes).await;

    assert_eq!(world.open_multipart_uploads().await, 0, "the next delivery aborted the orphan upload");
    let template = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/central-account.yaml")).expect("template");
    assert!(template.contains("AbortIncompleteMultipartUpload"), "the artifact bucket's lifecycle rule aborts what a deployment gone wrong might leave");
}

// ---------------------------------------------------------------------------------------------
// Part 2 (handler side): a mutated event reaches no port unless it is valid

/// The parsers' random mutations of the reference events (shared/core/tests/parser_properties.rs).
#[allow(dead_code)]
#[path = "../../shared/core/tests/mutations/mod.rs"]
mod mutations;

/// Property: a mutated reference event reaches no AWS call unless it parses as a valid state
/// change from an allow-listed account; what does reach AWS is answered with a typed error or
/// an outcome, never a panic. The handler runs over the in-memory fakes, every port call
/// counted by the chaos wrappers.
mod properties {
    use std::sync::Arc;

    use lambda_runtime::{Context, LambdaEvent};
    use promotion_core::config::PromoteConfig;
    use promotion_core::domain::event::{ApprovalStatus, StateChange};
    use promotion_core::fakes::{FakeLedger, PromoteWorld};
    use promotion_core::ports::PromotePorts;
    use promotion_core::promotion::{Outcome, PromoteError};
    use promotion_tests::chaos::Chaos;
    use proptest::prelude::*;
    use proptest::test_runner::Config;
    use serde_json::Value;

    use super::mutations::arb_mutated_event;
    use promotion_core::failure::Failure;

    struct World {
        ports: PromotePorts,
        chaos: Arc<Chaos>,
        ledger: Arc<FakeLedger>,
        config: PromoteConfig,
    }

    /// promote-model's fake world (its dev version runs a replicated dev image), counted.
    fn world() -> World {
        let fakes = PromoteWorld::new();
        let chaos = Chaos::counting();
        World { ports: chaos.ports(&fakes.ports), chaos, ledger: fakes.ledger.clone(), config: fakes.config.clone() }
    }

    /// What a delivery of `event` did: the class of its answer and how many port calls it made.
    fn deliver(event: &Value) -> Result<(), TestCaseError> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let world = world();
        let mut context = Context::default();
        context.request_id = "property".into();
        let answer = runtime.block_on(promote_model::handler(&world.ports, &world.config, LambdaEvent::new(event.clone(), context)));
        let calls = world.chaos.calls().len();
        match StateChange::parse(event) {
            Err(parse_error) => {
                let error = answer.expect_err("an invalid event is refused");
                prop_assert_eq!(error.error_type(), "Rejected.InvalidEvent", "{}", parse_error);
                prop_assert_eq!(calls, 0, "an invalid event ({}) made port calls", parse_error);
                prop_assert!(world.ledger.records.lock().unwrap().is_empty());
            }
            Ok(change) if !world.config.source_accounts.contains_key(&change.account) => {
                prop_assert_eq!(answer.expect_err("unknown account").error_type(), "Rejected.UnknownSourceAccount");
                prop_assert_eq!(calls, 0, "an event from {} made port calls", change.account);
            }
            Ok(change) => match answer {
                // Past validation: whatever the answer, it is not a parse or account refusal.
                Err(error) => prop_assert!(!matches!(error, PromoteError::InvalidEvent(_) | PromoteError::UnknownAccount(_)), "{}", error),
                Ok(Outcome::Ignored { .. }) if change.status == ApprovalStatus::PendingManualApproval => {
                    prop_assert_eq!(calls, 0)
                }
                Ok(_) => prop_assert!(calls > 0, "a decision is acted on through the ports"),
            },
        }
        Ok(())
    }

    /// The mutations reach every branch of the property: invalid events, unknown accounts and
    /// events that go on to AWS calls.
    #[test]
    fn the_mutations_reach_the_handler_past_validation() {
        use proptest::strategy::{Strategy, ValueTree};
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = arb_mutated_event();
        let config = world().config;
        let (mut invalid, mut unknown, mut valid) = (0, 0, 0);
        for _ in 0..2000 {
            let (_, event) = strategy.new_tree(&mut runner).unwrap().current();
            match StateChange::parse(&event) {
                Err(_) => invalid += 1,
                Ok(change) if !config.source_accounts.contains_key(&change.account) => unknown += 1,
                Ok(_) => valid += 1,
            }
        }
        assert!(invalid > 500 && unknown > 0 && valid > 50, "invalid {invalid}, unknown account {unknown}, valid {valid}");
    }

    proptest! {
        #![proptest_config(Config { cases: 1500, max_shrink_iters: 2000, ..Config::default() })]

        #[test]
        fn a_mutated_event_reaches_no_aws_call_unless_it_is_valid((_name, event) in arb_mutated_event()) {
            deliver(&event)?;
        }
    }
}
