//! Random mutations of the reference events (values replaced by random JSON at random JSON
//! pointers, keys dropped or added, strings duplicated, cut, altered or blown up), as proptest
//! strategies: the parsers' properties here and the handler's in tests/it/hostile.rs use them.

use std::path::Path;

use proptest::prelude::*;
use serde_json::{Map, Value};

fn reference_events() -> Vec<(String, Value)> {
    // The workspace's events/, from the core crate's tests and from tests/ alike.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().map(|dir| dir.join("events")).find(|dir| dir.is_dir()).expect("events/ above the crate");
    let mut events: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .expect("events/")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read event");
            (path.file_name().unwrap().to_string_lossy().into_owned(), serde_json::from_str(&text).expect("reference events are JSON"))
        })
        .collect();
    events.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(events.len() >= 8, "found {} reference events", events.len());
    events
}

/// Strings that mean something to the parsers, so that mutations often land near validity.
const INTERESTING: &[&str] = &[
    "",
    "aws.sagemaker",
    "SageMaker Model Package State Change",
    "111111111111",
    "222222222222",
    "11111111111",
    "arn:aws:sagemaker:us-east-1:111111111111:model-package/churn-prediction/3",
    "arn:aws:sagemaker:us-east-1:111111111111:model-package/../3",
    "arn:aws:sagemaker:us-east-1:111111111111:model-package/a/b/3",
    "arn:aws:sagemaker:us-east-1:111111111111:model-package/churn-prediction/0",
    "arn:aws:sagemaker:us-east-1:111111111111:model-package/churn-prediction/99999999999",
    "churn-prediction",
    "Approved",
    "Rejected",
    "PendingManualApproval",
    "2026-11-20T09:30:00Z",
    "2026-11-20T09:30:00.123+05:30",
    "9999-99-99T99:99:99Z",
    "{\"stage\":\"test\",\"model_package_arn\":\"arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-prediction-111111111111/1\"}",
    "{\"stage\":\"prod\"}",
    "test",
    "prod",
    "é✓\u{10FFFF}",
    "\u{0}\n\r\t",
    "../../etc/passwd",
];

pub fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(INTERESTING).prop_map(str::to_owned),
        2 => ".{0,40}",
        1 => (proptest::sample::select(INTERESTING), 1usize..5000).prop_map(|(s, n)| s.repeat(n)),
    ]
}

pub fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        prop_oneof![Just(0i64), Just(1), Just(3), Just(-1), Just(1_614_186_014_000), Just(i64::MAX), Just(i64::MIN)].prop_map(Value::from),
        arb_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(arb_string(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(Value),
    Remove,
    Duplicate,
    Truncate(usize),
    Insert(usize, char),
    Blow(usize),
    ToString,
    AddKey(String, Value),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => arb_json().prop_map(Mutation::Replace),
        3 => Just(Mutation::Remove),
        1 => Just(Mutation::Duplicate),
        2 => any::<usize>().prop_map(Mutation::Truncate),
        2 => (any::<usize>(), any::<char>()).prop_map(|(at, c)| Mutation::Insert(at, c)),
        1 => (1usize..300_000).prop_map(Mutation::Blow),
        1 => Just(Mutation::ToString),
        1 => (arb_string(), arb_json()).prop_map(|(k, v)| Mutation::AddKey(k, v)),
    ]
}

fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                pointers(child, format!("{at}/{}", key.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{index}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

fn char_floor(s: &str, at: usize) -> usize {
    let mut at = at % (s.len() + 1);
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Applies `mutation` at the pointer chosen by `pick` (modulo the event's pointers).
fn mutate(event: &mut Value, pick: usize, mutation: &Mutation) {
    let mut all = Vec::new();
    pointers(event, String::new(), &mut all);
    let pointer = all[pick % all.len()].clone();
    if let Mutation::Remove = mutation {
        if let Some((parent, last)) = pointer.rsplit_once('/') {
            let key = last.replace("~1", "/").replace("~0", "~");
            match event.pointer_mut(parent) {
                Some(Value::Object(map)) => {
                    map.remove(&key);
                }
                Some(Value::Array(items)) => {
                    if let Ok(index) = key.parse::<usize>() {
                        if index < items.len() {
                            items.remove(index);
                        }
                    }
                }
                _ => {}
            }
            return;
        }
    }
    let Some(target) = event.pointer_mut(&pointer) else {
        return;
    };
    match mutation {
        Mutation::Replace(value) => *target = value.clone(),
        Mutation::Remove => *target = Value::Null,
        Mutation::Duplicate => {
            if let Value::String(s) = target {
                *s = s.repeat(2);
            } else {
                *target = Value::Array(vec![target.clone(), target.clone()]);
            }
        }
        Mutation::Truncate(at) => {
            if let Value::String(s) = target {
                let cut = char_floor(s, *at);
                s.truncate(cut);
            }
        }
        Mutation::Insert(at, c) => {
            if let Value::String(s) = target {
                let at = char_floor(s, *at);
                s.insert(at, *c);
            }
        }
        Mutation::Blow(len) => {
            if let Value::String(s) = target {
                let seed = if s.is_empty() { "x".to_owned() } else { s.clone() };
                *s = seed.repeat(len / seed.len() + 1);
            }
        }
        Mutation::ToString => *target = Value::String(target.to_string()),
        Mutation::AddKey(key, value) => {
            if let Value::Object(map) = target {
                map.insert(key.clone(), value.clone());
            }
        }
    }
}

pub fn arb_mutated_event() -> impl Strategy<Value = (String, Value)> {
    let events = reference_events();
    (0..events.len(), proptest::collection::vec((any::<usize>(), arb_mutation()), 1..6)).prop_map(move |(index, mutations)| {
        let (name, mut event) = events[index].clone();
        for (pick, mutation) in &mutations {
            mutate(&mut event, *pick, mutation);
        }
        (name, event)
    })
}
