//! 4. Burst: distinct approvals and duplicate deliveries.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::StreamExt;
use promote_cli::local::put_object;
use promotion_core::domain::ids::ModelPackageArn;
use promotion_core::domain::naming::{central_description, central_group_name};
use promotion_core::failure::Failure as _;
use promotion_core::promotion::{Outcome, PromoteError};
use promotion_tests::TestWorld;
use serde_json::Value;

use crate::args::Args;
use crate::calls;
use crate::world::{counted, deliver, new_dev_version};

#[derive(Default)]
struct Answers {
    promoted: usize,
    already: usize,
    retried: usize,
    failed: Vec<String>,
}

pub async fn burst(args: &Args) -> Result<String> {
    let world = TestWorld::new().await;
    let bucket = world.world.names.dev_bucket.clone();
    let model = put_object(world.dev(), &bucket, "burst/model.tar.gz", vec![42; 64 * 1024]).await?;
    let metrics = br#"{"binary_classification_metrics": {"auc": {"value": 0.9}}}"#.to_vec();
    let evaluation = put_object(world.dev(), &bucket, "burst/evaluation.json", metrics).await?;
    let group = world.world.names.dev_group.clone();
    let registering = Instant::now();
    let registered: Vec<Result<(ModelPackageArn, Value)>> =
        futures::stream::iter(0..args.burst).map(|_| new_dev_version(&world, &group, &model, Some((&evaluation, &evaluation)))).buffered(8).collect().await;
    let events: Vec<(ModelPackageArn, Value)> = registered.into_iter().collect::<Result<_>>()?;
    eprintln!("registered {} dev versions in {:?}", events.len(), registering.elapsed());
    let (ports, log) = counted(&world);
    let config = world.world.config.clone();
    log.take();
    let started = Instant::now();
    let mut queue: VecDeque<usize> = shuffled_twice(events.len()).into();
    let mut answers = Answers::default();
    while !queue.is_empty() {
        let round: Vec<usize> = queue.drain(..).collect();
        let delivered: Vec<(usize, Result<Outcome, PromoteError>)> = futures::stream::iter(round)
            .map(|index| {
                let (ports, config, event) = (&ports, &config, &events[index].1);
                async move { (index, deliver(ports, config, event).await) }
            })
            .buffer_unordered(args.concurrency)
            .collect()
            .await;
        for (index, answer) in delivered {
            match answer {
                Ok(Outcome::Promoted(_)) => answers.promoted += 1,
                Ok(Outcome::AlreadyPromoted(_)) => answers.already += 1,
                Err(error) if error.is_retryable() => {
                    answers.retried += 1;
                    queue.push_back(index);
                }
                other => answers.failed.push(format!("{}: {other:?}", events[index].0)),
            }
        }
        if !queue.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let drained = started.elapsed();
    let requests = calls::requests(&log.take());
    let (central, duplicates, lost) = count_check(&world, &events).await?;
    let n = events.len();
    let mut text = String::new();
    writeln!(text, "{n} dev versions are approved (a 64 KiB model and a metrics report each); their {n} approval events and a")?;
    writeln!(
        text,
        "duplicate of each ({} deliveries, shuffled) go through the handler with at most {} at once, all into one central",
        n * 2,
        args.concurrency
    )?;
    writeln!(text, "group. A retryable answer (a claim held by a concurrent delivery) is delivered again after 200 ms, as EventBridge")?;
    writeln!(text, "retries. The count check then lists the central group and reads every ledger record.\n")?;
    writeln!(text, "| | |\n|---|---|")?;
    writeln!(text, "| deliveries | {} ({n} distinct + {n} duplicates), concurrency {} |", n * 2, args.concurrency)?;
    writeln!(text, "| time to drain | {:.1} s ({:.1} deliveries/s) |", drained.as_secs_f64(), (n * 2 + answers.retried) as f64 / drained.as_secs_f64())?;
    let Answers { promoted, already, retried, failed } = answers;
    writeln!(text, "| answers | {promoted} Promoted, {already} AlreadyPromoted, {retried} retryable (redelivered), {} failed |", failed.len())?;
    writeln!(text, "| AWS calls | {requests} ({:.1} per distinct approval) |", requests as f64 / n as f64)?;
    writeln!(text, "| central versions | {central} |")?;
    writeln!(text, "| duplicates | {duplicates} |")?;
    writeln!(text, "| lost | {lost} |")?;
    let pass = central == n && duplicates == 0 && lost == 0 && failed.is_empty();
    writeln!(text, "\nCount check ({n} central versions, 0 duplicates, 0 lost): **{}**", if pass { "pass" } else { "fail" })?;
    for failure in failed.iter().take(5) {
        writeln!(text, "- {failure}")?;
    }
    Ok(text)
}

/// Every index twice, in a fixed shuffled order: distinct approvals and a duplicate of each,
/// interleaved as EventBridge's at-least-once delivery can.
fn shuffled_twice(n: usize) -> Vec<usize> {
    let mut deliveries: Vec<usize> = (0..n).chain(0..n).collect();
    let mut seed = 0x5eed_u64;
    for i in (1..deliveries.len()).rev() {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        deliveries.swap(i, (seed >> 33) as usize % (i + 1));
    }
    deliveries
}

/// Central versions, duplicates among them, and sources without exactly one promoted version.
async fn count_check(world: &TestWorld, events: &[(ModelPackageArn, Value)]) -> Result<(usize, usize, usize)> {
    let central_group = central_group_name(&events[0].0);
    let mut pages = world.sagemaker().list_model_packages().model_package_group_name(central_group.as_str()).max_results(100).into_paginator().send();
    let mut descriptions = Vec::new();
    while let Some(page) = pages.next().await {
        descriptions.extend(page?.model_package_summary_list().iter().map(|s| s.model_package_description().unwrap_or_default().to_owned()));
    }
    let mut distinct = descriptions.clone();
    distinct.sort();
    distinct.dedup();
    let mut lost = 0;
    for (source, _) in events {
        let record = world.ports.ledger.get(source).await?;
        let ok = record.is_some_and(|r| r.state.as_str() == "Promoted" && r.central_package.is_some())
            && distinct.binary_search(&central_description(source)).is_ok();
        lost += usize::from(!ok);
    }
    Ok((descriptions.len(), descriptions.len() - distinct.len(), lost))
}
