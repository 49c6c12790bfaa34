//! The forwarding hop, run on moto's EventBridge: the local world's dev approval (its state change
//! and CloudTrail's record of the call) put on the dev account's default bus passes the dev rule's
//! pattern as infra/dev-account.yaml writes it, reaches the central bus (the rule's target, as the
//! template names it), matches the central rules' patterns as infra/central-account.yaml writes
//! them, and lands at their targets (SQS queues here, standing in for the functions, each given
//! the whole event as Lambda would be); from there the functions record the approvers. What must
//! not pass (another status, a failed call, another account, the service's own `ModelPromoted`)
//! does not.
//!
//! Measured on moto 5.2.5 (and held below): an event forwarded to another account's bus arrives
//! with that account's id as `account`, no `resources` and a new `id`; AWS keeps all three. So a
//! central rule's `account` clause, which moto would match against the central account, is left
//! out of the rule installed on the central bus and checked on the restored event instead, and
//! the test restores `account` and `resources` before a function reads the event.

use std::collections::BTreeMap;

use anyhow::Result;
use aws_config::SdkConfig;
use aws_sdk_eventbridge::types::{InputTransformer, PutEventsRequestEntry, Target};
use lambda_runtime::{Context, LambdaEvent};
use promote_cli::local::{self, CENTRAL_ACCOUNT, DATA_SCIENTIST, DEV_ACCOUNT, ML_ENGINEER, REGION};
use promotion_aws::sagemaker::SageMakerRegistry;
use promotion_core::approvers::approvers_of;
use promotion_core::domain::event::ApprovalStatus;
use promotion_core::domain::identity::{Gate, Principal};
use promotion_core::domain::ids::ModelPackageArn;
use promotion_core::ports::ModelRegistry;
use promotion_tests::{moto_endpoint, TestWorld};
use serde_json::{json, Value};
use serde_norway::value::TaggedValue;

const STRANGER: &str = "555555555555";

/// A template's resources with the CloudFormation intrinsics the rules use resolved: `!Ref`,
/// `!Sub` and `!If` from the parameters and conditions given; `!GetAtt` left as its text.
struct Template {
    resources: serde_norway::Mapping,
    parameters: BTreeMap<&'static str, Value>,
    conditions: BTreeMap<&'static str, bool>,
}

impl Template {
    fn load(name: &str, parameters: BTreeMap<&'static str, Value>, conditions: BTreeMap<&'static str, bool>) -> Self {
        let path = format!("{}/../infra/{name}", env!("CARGO_MANIFEST_DIR"));
        let template: serde_norway::Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let resources = template["Resources"].as_mapping().expect("Resources").clone();
        Self { resources, parameters, conditions }
    }

    /// A rule's property (`EventPattern`, `EventBusName`, `Targets`), resolved.
    fn rule(&self, logical: &str, property: &str) -> Value {
        let rule = &self.resources[logical];
        assert_eq!(rule["Type"].as_str(), Some("AWS::Events::Rule"), "{logical}");
        self.resolve(&rule["Properties"][property])
    }

    fn resolve(&self, node: &serde_norway::Value) -> Value {
        use serde_norway::Value as Yaml;
        match node {
            Yaml::Null => Value::Null,
            Yaml::Bool(b) => json!(b),
            Yaml::Number(n) => serde_json::to_value(n).unwrap(),
            Yaml::String(s) => json!(s),
            Yaml::Sequence(items) => Value::Array(items.iter().map(|i| self.resolve(i)).collect()),
            Yaml::Mapping(map) => Value::Object(map.iter().map(|(k, v)| (k.as_str().expect("string keys").to_owned(), self.resolve(v))).collect()),
            Yaml::Tagged(tagged) => self.intrinsic(tagged),
        }
    }

    fn intrinsic(&self, tagged: &TaggedValue) -> Value {
        let value = &tagged.value;
        match tagged.tag.to_string().as_str() {
            "!Ref" => self.parameter(value.as_str().unwrap()),
            "!GetAtt" => json!(format!("GetAtt {}", value.as_str().unwrap())),
            "!If" => {
                let branches = value.as_sequence().unwrap();
                let condition = self.conditions[branches[0].as_str().unwrap()];
                self.resolve(&branches[if condition { 1 } else { 2 }])
            }
            "!Sub" => {
                let (text, local) = match value {
                    serde_norway::Value::String(text) => (text.clone(), serde_json::Map::new()),
                    serde_norway::Value::Sequence(pair) => {
                        let Value::Object(local) = self.resolve(&pair[1]) else { panic!("!Sub variables") };
                        (pair[0].as_str().unwrap().to_owned(), local)
                    }
                    other => panic!("!Sub {other:?}"),
                };
                json!(substitute(&text, |name| local.get(name).cloned().unwrap_or_else(|| self.parameter(name))))
            }
            other => panic!("the rules use no {other}"),
        }
    }

    fn parameter(&self, name: &str) -> Value {
        self.parameters.get(name).cloned().unwrap_or_else(|| panic!("no parameter {name} given"))
    }
}

/// `${Name}` replaced by the string `lookup` gives for it.
fn substitute(text: &str, lookup: impl Fn(&str) -> Value) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let end = rest[start..].find('}').expect("closed ${") + start;
        out.push_str(&rest[..start]);
        out.push_str(lookup(&rest[start + 2..end]).as_str().expect("a string"));
        rest = &rest[end + 1..];
    }
    out + rest
}

fn dev_template(central_bus: &str) -> Template {
    let parameters = BTreeMap::from([
        ("CentralAccountId", json!(CENTRAL_ACCOUNT)),
        ("CentralEventBusName", json!(central_bus)),
        ("ForwardRoleName", json!("model-promotion-forward-approvals")),
        ("AWS::Partition", json!("aws")),
        ("AWS::Region", json!(REGION)),
    ]);
    Template::load("dev-account.yaml", parameters, BTreeMap::from([("CentralInThisRegion", true)]))
}

fn central_template(central_bus: &str) -> Template {
    let parameters = BTreeMap::from([
        ("EventBus", json!(central_bus)),
        ("DevAccountIds", json!([DEV_ACCOUNT])),
        ("ServiceName", json!("model-promotion")),
        ("AWS::AccountId", json!(CENTRAL_ACCOUNT)),
    ]);
    Template::load("central-account.yaml", parameters, BTreeMap::new())
}

/// The central rules this hop reaches: on the central bus (forwarded events), or on the central
/// account's default bus (its own registry's events).
const FORWARDED_RULES: [&str; 3] = ["PromoteModelRule", "DevApproverRule", "RevocationRule"];
const CENTRAL_RULES: [&str; 2] = ["StartDeploymentRule", "CentralApproverRule"];

struct Hop {
    world: TestWorld,
    suffix: String,
    dev_template: Template,
    central_template: Template,
    /// Each central rule's queue, and the tap that sees whatever reaches the central bus.
    queues: BTreeMap<&'static str, String>,
}

impl Hop {
    async fn new() -> Self {
        let world = TestWorld::new().await;
        let suffix = world.world.names.event_bus.rsplit('-').next().unwrap().to_owned();
        let bus = world.world.names.event_bus.clone();
        let mut hop = Self { dev_template: dev_template(&bus), central_template: central_template(&bus), world, suffix, queues: BTreeMap::new() };
        for rule in FORWARDED_RULES {
            let mut pattern = hop.central_template.rule(rule, "EventPattern");
            // Forwarded events carry the central account's id on moto: the clause is checked on the
            // restored event (`passes_account_clause`).
            pattern.as_object_mut().unwrap().remove("account");
            hop.install(rule, Some(&bus), &pattern).await;
        }
        for rule in CENTRAL_RULES {
            assert_eq!(hop.central_template.rule(rule, "EventBusName"), Value::Null, "{rule} is on the default bus");
            let pattern = hop.central_template.rule(rule, "EventPattern");
            hop.install(rule, None, &pattern).await;
        }
        hop.install("tap", Some(&bus), &json!({ "source": [{ "prefix": "" }] })).await;
        for account in [DEV_ACCOUNT, STRANGER] {
            hop.install_dev_rule(account).await;
        }
        hop
    }

    async fn account(&self, account: &str) -> Result<SdkConfig> {
        local::account_config(moto_endpoint(), account).await
    }

    /// A rule on the central account's bus (`None`: its default bus) whose target is a queue that
    /// gets the whole event, as a Lambda target would.
    async fn install(&mut self, rule: &'static str, bus: Option<&str>, pattern: &Value) {
        let central = self.world.central();
        let (events, sqs) = (aws_sdk_eventbridge::Client::new(central), aws_sdk_sqs::Client::new(central));
        let name = format!("{rule}-{}", self.suffix);
        let url = sqs.create_queue().queue_name(&name).send().await.unwrap().queue_url().unwrap().to_owned();
        events.put_rule().name(&name).set_event_bus_name(bus.map(str::to_owned)).event_pattern(pattern.to_string()).send().await.unwrap();
        let whole_event = InputTransformer::builder().input_template("<aws.events.event.json>").build().unwrap();
        let target =
            Target::builder().id("queue").arn(format!("arn:aws:sqs:{REGION}:{CENTRAL_ACCOUNT}:{name}")).input_transformer(whole_event).build().unwrap();
        events.put_targets().rule(&name).set_event_bus_name(bus.map(str::to_owned)).targets(target).send().await.unwrap();
        self.queues.insert(rule, url);
    }

    /// The dev stack's forwarding rule in `account`'s default bus, its target the central bus.
    async fn install_dev_rule(&self, account: &str) {
        let events = aws_sdk_eventbridge::Client::new(&self.account(account).await.unwrap());
        let pattern = self.dev_template.rule("ForwardRule", "EventPattern");
        let targets = self.dev_template.rule("ForwardRule", "Targets");
        let central_bus = targets[0]["Arn"].as_str().unwrap();
        assert_eq!(central_bus, format!("arn:aws:events:{REGION}:{CENTRAL_ACCOUNT}:event-bus/{}", self.world.world.names.event_bus));
        let name = format!("forward-approvals-{}", self.suffix);
        events.put_rule().name(&name).event_pattern(pattern.to_string()).send().await.unwrap();
        let target = Target::builder().id("central-bus").arn(central_bus).role_arn(format!("arn:aws:iam::{account}:role/model-promotion-forward-approvals"));
        events.put_targets().rule(&name).targets(target.build().unwrap()).send().await.unwrap();
    }

    /// What landed in a rule's queue, drained.
    async fn landed(&self, rule: &str) -> Vec<Value> {
        let sqs = aws_sdk_sqs::Client::new(self.world.central());
        let mut landed = Vec::new();
        loop {
            let received = sqs.receive_message().queue_url(&self.queues[rule]).max_number_of_messages(10).send().await.unwrap();
            if received.messages().is_empty() {
                return landed;
            }
            for message in received.messages() {
                landed.push(serde_json::from_str(message.body().unwrap()).unwrap());
                sqs.delete_message().queue_url(&self.queues[rule]).receipt_handle(message.receipt_handle().unwrap()).send().await.unwrap();
            }
        }
    }

    /// Whether the central rule's `account` clause, as the template writes it, admits `account`.
    fn passes_account_clause(&self, rule: &str, account: &str) -> bool {
        self.central_template.rule(rule, "EventPattern")["account"].as_array().unwrap().iter().any(|a| a == account)
    }
}

/// `event` (an EventBridge envelope) put on `bus` by `sdk`'s account, which becomes its `account`.
async fn put(sdk: &SdkConfig, bus: Option<&str>, event: &Value) {
    let resources = event["resources"].as_array().map(|r| r.iter().map(|v| v.as_str().unwrap().to_owned()).collect());
    let entry = PutEventsRequestEntry::builder()
        .source(event["source"].as_str().unwrap())
        .detail_type(event["detail-type"].as_str().unwrap())
        .detail(event["detail"].to_string())
        .set_resources(resources)
        .set_event_bus_name(bus.map(str::to_owned))
        .build();
    let put = aws_sdk_eventbridge::Client::new(sdk).put_events().entries(entry).send().await.unwrap();
    assert_eq!(put.failed_entry_count(), 0, "{put:?}");
}

fn the_one_with(landed: &[Value], detail: &Value) -> Value {
    let found: Vec<&Value> = landed.iter().filter(|e| &e["detail"] == detail).collect();
    assert_eq!(found.len(), 1, "{detail} landed {} times in {landed:?}", found.len());
    found[0].clone()
}

/// The event as AWS would have delivered it: `account` and `resources` as they were put.
fn restored(mut landed: Value, sent: &Value) -> Value {
    landed["account"] = sent["account"].clone();
    landed["resources"] = sent["resources"].clone();
    landed
}

fn lambda(payload: Value) -> LambdaEvent<Value> {
    let mut context = Context::default();
    context.deadline = u64::try_from((chrono::Utc::now() + chrono::Duration::minutes(5)).timestamp_millis()).unwrap();
    LambdaEvent::new(payload, context)
}

/// An event of `account` as put: the same shape with another account's ARNs and ids.
fn from_account(event: &Value, account: &str) -> Value {
    serde_json::from_str(&event.to_string().replace(DEV_ACCOUNT, account)).unwrap()
}

#[tokio::test]
async fn a_dev_approval_and_its_cloudtrail_record_cross_to_the_central_rules_and_record_the_approver() {
    let _shared = promotion_tests::EMULATOR.read().await;
    let hop = Hop::new().await;
    let package = hop.world.world.dev_package.clone();
    let scientist = local::session_of(hop.world.dev(), DATA_SCIENTIST).await.unwrap();
    local::set_dev_approval(&scientist, &package, true).await.unwrap();
    let approved = local::approval_event(&package, "Approved");
    let call = local::approval_call_event(&scientist, Some(DATA_SCIENTIST.name), &package, "Approved").await.unwrap();
    let mut pending = local::approval_event(&package, "PendingManualApproval");
    pending["detail"]["ModelPackageVersion"] = json!(99);
    let mut failed = call.clone();
    failed["detail"]["errorCode"] = json!("AccessDenied");
    failed["detail"]["eventID"] = json!("failed-call");
    let mut rejected_call = call.clone();
    rejected_call["detail"]["requestParameters"]["modelApprovalStatus"] = json!("Rejected");
    rejected_call["detail"]["eventID"] = json!("rejecting-call");
    let promoted = json!({ "source": "model-promotion", "detail-type": "ModelPromoted", "detail": { "source": package }, "resources": [] });
    let (stranger_approved, stranger_call) = (from_account(&approved, STRANGER), from_account(&call, STRANGER));

    let dev = hop.account(DEV_ACCOUNT).await.unwrap();
    for event in [&approved, &call, &pending, &failed, &rejected_call, &promoted] {
        put(&dev, None, event).await;
    }
    let stranger = hop.account(STRANGER).await.unwrap();
    for event in [&stranger_approved, &stranger_call] {
        put(&stranger, None, event).await;
    }
    put(hop.world.central(), Some(&hop.world.world.names.event_bus), &promoted).await;

    // The dev rule forwarded exactly the approval and its record, from both accounts.
    let tapped: Vec<Value> = hop.landed("tap").await.into_iter().filter(|e| e["source"] == "aws.sagemaker").collect();
    let mut forwarded: Vec<&Value> = tapped.iter().map(|e| &e["detail"]).collect();
    forwarded.sort_by_key(|d| d.to_string());
    let mut expected = vec![&approved["detail"], &call["detail"], &stranger_approved["detail"], &stranger_call["detail"]];
    expected.sort_by_key(|d| d.to_string());
    assert_eq!(forwarded, expected);
    for arrived in &tapped {
        // moto 5.2.5's forwarding: the receiving account, no resources, a new id (AWS keeps them).
        assert_eq!((arrived["account"].as_str(), arrived["resources"].clone()), (Some(CENTRAL_ACCOUNT), json!([])), "{arrived}");
        assert_ne!(arrived["id"], approved["id"]);
    }

    // The central rules: each kind of event at its own function, nothing else anywhere.
    let at_promote = hop.landed("PromoteModelRule").await;
    let at_dev_approver = hop.landed("DevApproverRule").await;
    assert_eq!(at_promote.len(), 2, "{at_promote:?}");
    assert_eq!(at_dev_approver.len(), 2, "{at_dev_approver:?}");
    assert!(hop.landed("RevocationRule").await.is_empty(), "ModelPromoted is no revocation");
    for (rule, sent) in
        [("PromoteModelRule", &approved), ("PromoteModelRule", &stranger_approved), ("DevApproverRule", &call), ("DevApproverRule", &stranger_call)]
    {
        let landed = if rule == "PromoteModelRule" { &at_promote } else { &at_dev_approver };
        let event = restored(the_one_with(landed, &sent["detail"]), sent);
        let account = event["account"].as_str().unwrap();
        assert_eq!(hop.passes_account_clause(rule, account), account == DEV_ACCOUNT, "{rule} and account {account}");
    }

    // promote-model, given what landed (restored), promotes and records who approved in dev.
    let promotion = restored(the_one_with(&at_promote, &approved["detail"]), &approved);
    let outcome = promote_model::dispatch(&hop.world.ports, &hop.world.world.config, lambda(promotion)).await.unwrap();
    assert_eq!(outcome["outcome"], "promoted", "{outcome}");
    let record = restored(the_one_with(&at_dev_approver, &call["detail"]), &call);
    let recorded = promote_model::dispatch(&hop.world.ports, &hop.world.world.config, lambda(record)).await.unwrap();
    assert_eq!(recorded["outcome"], "approver_recorded", "{recorded}");

    let central: ModelPackageArn = outcome["central_package"].as_str().unwrap().parse().unwrap();
    let found = approvers_of(hop.world.ledger.as_ref(), hop.world.ledger.as_ref(), &central).await.unwrap();
    let dev_approver = found.dev.expect("the dev approver, read back from the ledger table");
    assert_eq!((dev_approver.gate, &dev_approver.package), (Gate::DevApproval, &package));
    assert_eq!(dev_approver.principal.as_deref(), Some(format!("arn:aws:sts::{DEV_ACCOUNT}:assumed-role/data-scientist/dana").as_str()));
    assert_eq!(
        dev_approver.normalised,
        Principal::Role { arn: format!("arn:aws:iam::{DEV_ACCOUNT}:role/data-scientist"), source_identity: Some("dana".into()) }
    );
    assert_eq!(dev_approver.event_id, call["detail"]["eventID"]);

    // A redelivery of the record keeps the first; the stranger's record is refused at the function too.
    let again = restored(the_one_with(&at_dev_approver, &call["detail"]), &call);
    assert_eq!(promote_model::dispatch(&hop.world.ports, &hop.world.world.config, lambda(again)).await.unwrap()["outcome"], "approver_kept");
    let foreign = restored(the_one_with(&at_dev_approver, &stranger_call["detail"]), &stranger_call);
    let refused = promote_model::dispatch(&hop.world.ports, &hop.world.world.config, lambda(foreign)).await.unwrap_err();
    assert_eq!(refused.error_type, "Rejected.UnknownSourceAccount");
    let items: Vec<String> =
        hop.world.ledger_items().await.iter().filter(|i| i["sk"].contains("APPROVER#")).map(|i| format!("{} {}", i["pk"], i["sk"])).collect();
    assert_eq!(items, [format!("S(\"PACKAGE#{package}\") S(\"APPROVER#DevApproval\")")], "one approver item, the dev approval's");
}

#[tokio::test]
async fn a_central_approval_and_its_cloudtrail_record_reach_start_deployment_which_records_the_approver() {
    let _shared = promotion_tests::EMULATOR.read().await;
    let hop = Hop::new().await;
    let approval = hop.world.decide(&hop.world.world.dev_package.clone(), true).await;
    let promoted = promote_model::dispatch(&hop.world.ports, &hop.world.world.config, lambda(approval)).await.unwrap();
    let central: ModelPackageArn = promoted["central_package"].as_str().unwrap().parse().unwrap();
    let engineer = local::session_of(hop.world.central(), ML_ENGINEER).await.unwrap();
    let registry = SageMakerRegistry::new(aws_sdk_sagemaker::Client::new(&engineer));
    registry.set_approval(&registry.describe_package(&central).await.unwrap(), ApprovalStatus::Approved, "ready for test", &[]).await.unwrap();
    let state_change = local::approval_event(&central, "Approved");
    let call = local::approval_call_event(&engineer, Some(ML_ENGINEER.name), &central, "Approved").await.unwrap();
    let mut failed = call.clone();
    failed["detail"]["errorCode"] = json!("ValidationException");

    for event in [&state_change, &call, &failed] {
        put(hop.world.central(), None, event).await;
    }

    let at_start = hop.landed("StartDeploymentRule").await;
    let at_approver = hop.landed("CentralApproverRule").await;
    let own: Vec<&Value> = at_start.iter().filter(|e| e["detail"] == state_change["detail"]).collect();
    assert_eq!(own.len(), 1, "{at_start:?}");
    assert_eq!(at_approver.iter().map(|e| &e["detail"]).collect::<Vec<_>>(), [&call["detail"]], "the failed call is not forwarded");
    assert_eq!(at_approver[0]["account"], CENTRAL_ACCOUNT, "no hop between accounts: nothing to restore");

    let config = hop.world.deploy_config();
    let ports = promotion_aws::wiring::deploy_ports(hop.world.central(), &config);
    let recorded = start_deployment::dispatch(&ports, &config, lambda(at_approver[0].clone())).await.unwrap();
    assert_eq!(recorded["outcome"], "approver_recorded", "{recorded}");

    let found = approvers_of(hop.world.ledger.as_ref(), hop.world.ledger.as_ref(), &central).await.unwrap();
    let central_approver = found.central.expect("the central approver, read back from the ledger table");
    assert_eq!(central_approver.principal.as_deref(), Some(format!("arn:aws:sts::{CENTRAL_ACCOUNT}:assumed-role/ml-engineer/erik").as_str()));
    assert_eq!(
        central_approver.normalised,
        Principal::Role { arn: format!("arn:aws:iam::{CENTRAL_ACCOUNT}:role/ml-engineer"), source_identity: Some("erik".into()) }
    );
    assert_eq!(found.dev, None, "no dev record was delivered in this story");
}
