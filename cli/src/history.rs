//! `promote history MODEL`: the audit trail in aligned columns, each entry's detail said in words
//! (`-o wide`: the package ARNs, event ids and the detail as recorded; `-o json`: the entries).

use promotion_core::domain::audit::{AuditAction, AuditEntry};
use promotion_core::domain::ids::{GroupName, ModelPackageArn};
use serde_json::{Map, Value};

use crate::ui;

/// The trail as a table.
pub fn render(model: &GroupName, entries: &[AuditEntry], wide: bool, width: u16) -> String {
    if wide {
        let header = ["TIME", "PACKAGE", "ACTION", "EVENT", "DETAIL"];
        let rows: Vec<Vec<String>> =
            entries.iter().map(|e| vec![e.at.to_rfc3339(), e.source.to_string(), e.action.to_string(), e.event_id.clone(), e.detail.to_string()]).collect();
        return ui::table(&header, &rows, width);
    }
    let header = ["TIME", "VERSION", "ACTION", "DETAIL"];
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| vec![e.at.format("%Y-%m-%d %H:%M:%S").to_string(), version(model, &e.source), e.action.to_string(), summary(model, e)])
        .collect();
    ui::table(&header, &rows, width)
}

/// `v3` for the model's own versions, `dev v3` for the dev version it was promoted from.
fn version(model: &GroupName, package: &ModelPackageArn) -> String {
    if package.group() == model {
        format!("v{}", package.version())
    } else {
        format!("dev v{}", package.version())
    }
}

/// What the entry's detail says, in words: names within the model shortened (`v1-test` for
/// `promoted-{model}-v1-test`), reports by their file name, ARNs as `group vN`.
/// A SHA-256 (hex, or `sha256:` and hex) shown by its first twelve digits, as `git` shows commits.
fn digest_shown(value: &str) -> String {
    let hex = value.strip_prefix("sha256:").unwrap_or(value);
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("{}…", &hex[..12])
    } else {
        value.to_owned()
    }
}

pub fn summary(model: &GroupName, entry: &AuditEntry) -> String {
    let mut fields = Map::new();
    if let Value::Object(detail) = &entry.detail {
        for (key, value) in detail {
            match (key.as_str(), value) {
                // A pipeline change carries CodePipeline's own detail: who approved, with what comment.
                ("detail", Value::Object(inner)) => fields.extend(inner.clone()),
                _ => {
                    fields.insert(key.clone(), value.clone());
                }
            }
        }
    } else if !entry.detail.is_null() {
        return words(model, &text(&entry.detail));
    }
    let get = |key: &str| fields.get(key).filter(|v| !v.is_null()).map(text);
    let mut parts = Vec::new();
    if entry.action == AuditAction::PipelineStarted {
        parts.extend(get("execution_id").map(|id| format!("execution {id}")));
    }
    match (get("stage"), get("endpoint")) {
        (Some(stage), _) => parts.push(format!("{stage} endpoint")),
        (None, Some(endpoint)) => parts.push(format!("{} endpoint", within(model, &endpoint))),
        (None, None) => {}
    }
    let phrases: [(&str, &dyn Fn(String) -> String); 11] = [
        ("config", &|v| format!("config {}", within(model, &v))),
        ("previous_config", &|v| format!("replacing {}", within(model, &v))),
        ("restored", &|v| format!("restored {}", within(model, &v))),
        ("central_package", &|v| v.parse::<ModelPackageArn>().map_or(v.clone(), |p| format!("as {}", version(model, &p)))),
        ("model_card_version", &|v| format!("model card v{v}")),
        ("passed", &|v| format!("{v} passed")),
        ("failed", &|v| format!("{v} failed")),
        ("report", &|v| format!("report {}", v.rsplit('/').next().unwrap_or(&v))),
        ("reason", &|v| words(model, &v)),
        ("by", &|v| format!("by {v}")),
        ("comment", &|v| format!("\"{v}\"")),
    ];
    for (key, phrase) in phrases {
        parts.extend(get(key).map(phrase));
    }
    // An operator's command: who, as the sessions it assumed name them.
    if let Some(who) = fields.get("operator").and_then(|o| o.get("source_identity")).and_then(Value::as_str) {
        parts.push(format!("operator {who}"));
    }
    const SAID: [&str; 18] = [
        "operator",
        "execution_id",
        "stage",
        "endpoint",
        "config",
        "previous_config",
        "restored",
        "central_package",
        "model_card_version",
        "passed",
        "failed",
        "report",
        "reason",
        "by",
        "comment",
        "state",
        "at",
        "pipeline",
    ];
    for (key, value) in fields.iter().filter(|(key, value)| !SAID.contains(&key.as_str()) && !value.is_null()) {
        parts.push(format!("{} {}", key.replace('_', " "), digest_shown(&words(model, &text(value)))));
    }
    parts.join(", ")
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A name of the model's own hosting without the `promoted-{model}-` every one starts with.
fn within(model: &GroupName, name: &str) -> String {
    name.strip_prefix(&format!("promoted-{model}-")).unwrap_or(name).to_owned()
}

/// Running text with ARNs as `group vN`, reports and other S3 objects by their file name, and
/// the model's hosting names shortened.
pub fn words(model: &GroupName, text: &str) -> String {
    let prefix = format!("promoted-{model}-");
    let mut text = ui::shorten(text);
    for stage in ["test", "prod"] {
        let endpoint = format!("{prefix}{stage}");
        text = text.replace(&format!("{endpoint} ({stage})"), &endpoint).replace(&endpoint, &format!("the {stage} endpoint"));
    }
    text.split(' ')
        .map(|word| match word.strip_prefix("s3://") {
            Some(path) => path.rsplit('/').next().unwrap_or(path).to_owned(),
            None => word.replace(&prefix, ""),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(source: &str, action: &str, detail: Value) -> AuditEntry {
        AuditEntry { source: source.parse().unwrap(), at: chrono::Utc::now(), event_id: "e-1".into(), action: action.parse::<AuditAction>().unwrap(), detail }
    }

    const CENTRAL: &str = "arn:aws:sagemaker:us-east-1:222222222222:model-package/fraud-detection-111111111111/1";

    #[test]
    fn each_detail_is_said_in_words_without_json() {
        let model: GroupName = "fraud-detection-111111111111".parse().unwrap();
        let report = "s3://model-promotion-artifacts-222222222222/reports/fraud-detection-111111111111/1/test-1d6e.json";
        let cases = [
            (
                entry(
                    "arn:aws:sagemaker:us-east-1:111111111111:model-package/fraud-detection/1",
                    "promoted",
                    json!({ "central_package": CENTRAL, "model_card_version": 1 }),
                ),
                "as v1, model card v1",
            ),
            (
                entry(
                    CENTRAL,
                    "deploy-started",
                    json!({ "stage": "test", "endpoint": "promoted-fraud-detection-111111111111-test", "config": "promoted-fraud-detection-111111111111-v1-test", "previous_config": null }),
                ),
                "test endpoint, config v1-test",
            ),
            (entry(CENTRAL, "tests-failed", json!({ "report": report, "passed": 1, "failed": 1 })), "1 passed, 1 failed, report test-1d6e.json"),
            (
                entry(
                    CENTRAL,
                    "rejected-by-tests",
                    json!({ "reason": format!("failed tests on promoted-fraud-detection-111111111111-test: scores: response lacks \"0.\"; report {report}") }),
                ),
                "failed tests on the test endpoint: scores: response lacks \"0.\"; report test-1d6e.json",
            ),
            (
                entry(
                    CENTRAL,
                    "rolled-back",
                    json!({ "endpoint": "promoted-fraud-detection-111111111111-test", "restored": "nothing (the endpoint was deleted)" }),
                ),
                "test endpoint, restored nothing (the endpoint was deleted)",
            ),
            (
                entry(
                    CENTRAL,
                    "prod-approved",
                    json!({ "execution_id": "local-1", "state": "SUCCEEDED", "detail": { "by": "ana", "comment": "risk review passed", "at": "2026-11-29T22:42:50.760Z" } }),
                ),
                "by ana, \"risk review passed\"",
            ),
            (entry(CENTRAL, "TestModel.TestModel-failed", json!({ "execution_id": "local-1", "state": "FAILED", "detail": {} })), ""),
            (entry(CENTRAL, "pipeline-started", json!({ "pipeline": "model-promotion-deploy", "execution_id": "local-1" })), "execution local-1"),
            (entry(CENTRAL, "silent-rollback", json!({ "stage": "prod", "alarm": "latency-p99" })), "prod endpoint, alarm latency-p99"),
            (
                entry(
                    CENTRAL,
                    "deploy-started",
                    json!({ "stage": "test", "release": format!("sha256:{}", "ab".repeat(32)), "operator": { "arn": "arn:aws:sts::222222222222:assumed-role/ops/alice", "source_identity": "alice" } }),
                ),
                "test endpoint, operator alice, release abababababab…",
            ),
        ];
        for (entry, said) in cases {
            assert_eq!(summary(&model, &entry), said, "{}", entry.action);
        }
    }

    #[test]
    fn the_columns_line_up_whatever_the_action() {
        let model: GroupName = "fraud-detection-111111111111".parse().unwrap();
        let entries = [
            entry(CENTRAL, "pipeline-started", json!({ "execution_id": "local-1" })),
            entry(CENTRAL, "DeployTest.DeployTest-succeeded", json!({})),
            entry(CENTRAL, "deployed", json!({ "stage": "test" })),
        ];

        let text = anstream::adapter::strip_str(&render(&model, &entries, false, 100)).to_string();

        let lines: Vec<&str> = text.lines().collect();
        let detail = lines[0].find("DETAIL").unwrap();
        assert_eq!(lines[1].find("execution"), Some(detail), "{text}");
        assert_eq!(lines[3].find("test endpoint"), Some(detail), "{text}");
        assert!(!text.contains('{'), "{text}");
    }
}
