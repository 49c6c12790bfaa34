//! The hot path's micro-benchmark: a state-change event parsed and validated, from a value (what
//! the handler receives) and from the wire bytes (what the runtime deserializes first).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use promotion_core::domain::deploy::PipelineJob;
use promotion_core::domain::event::StateChange;
use serde_json::Value;

const ISO: &str = include_str!("../../events/model-package-approved.json");
const MILLIS: &str = include_str!("../../events/model-package-approved-epoch-millis.json");
const DOCS: &str = include_str!("../../events/sagemaker-state-change-aws-docs.json");
const JOB: &str = include_str!("../../events/codepipeline-job-deploy-test.json");

fn parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(1));
    let iso: Value = serde_json::from_str(ISO).unwrap();
    let millis: Value = serde_json::from_str(MILLIS).unwrap();
    let docs: Value = serde_json::from_str(DOCS).unwrap();
    let mut forged = iso.clone();
    forged["account"] = "555555555555".into();
    let job: Value = serde_json::from_str(JOB).unwrap();
    assert!(StateChange::parse(&iso).is_ok() && StateChange::parse(&millis).is_ok() && StateChange::parse(&forged).is_err());
    group.bench_function("state_change_iso_time", |b| b.iter(|| StateChange::parse(black_box(&iso))));
    group.bench_function("state_change_epoch_millis", |b| b.iter(|| StateChange::parse(black_box(&millis))));
    group.bench_function("state_change_aws_docs_duplicate_source", |b| b.iter(|| StateChange::parse(black_box(&docs))));
    group.bench_function("state_change_rejected_account_mismatch", |b| b.iter(|| StateChange::parse(black_box(&forged))));
    group.bench_function("state_change_from_wire_bytes", |b| {
        b.iter(|| {
            let value: Value = serde_json::from_slice(black_box(ISO.as_bytes())).unwrap();
            StateChange::parse(&value).map(|c| c.package.version())
        })
    });
    group.bench_function("pipeline_job", |b| b.iter(|| PipelineJob::parse(black_box(&job))));
    group.finish();
}

criterion_group!(benches, parsing);
criterion_main!(benches);
