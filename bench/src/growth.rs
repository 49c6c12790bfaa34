//! 2. Promotion cost as the central group grows.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Result;
use aws_sdk_sagemaker::types::{InferenceSpecification, ModelApprovalStatus, ModelPackageContainerDefinition};
use futures::StreamExt;
use promotion_core::domain::naming::central_group_name;
use promotion_core::promotion::Outcome;
use promotion_tests::chaos::Chaos;
use promotion_tests::TestWorld;

use crate::args::Args;
use crate::calls;
use crate::report::{list, median, ms};
use crate::world::{counted, deliver, dev_artifacts, new_dev_version};

const INTRO: &str = "A central group is first filled with N versions (created directly with the SDK), then one new dev
version is promoted into it, three times in a row. AWS calls are the HTTP requests the SDK sent
(retries included, counted by an SDK interceptor on every client the ports use); waves are the calls' critical
path, the longest chain of calls each begun after the previous one ended; port calls are the calls through the
service's ports. Time is the handler's wall-clock time against moto, median of the three.
";

pub async fn growth(args: &Args) -> Result<String> {
    let mut text = INTRO.to_owned();
    writeln!(text)?;
    writeln!(
        text,
        "| versions already in the group | promotion time (median) | AWS calls per promotion | call waves | port calls | calls by operation (last promotion) |"
    )?;
    writeln!(text, "|---|---|---|---|---|---|")?;
    let mut counts = Vec::new();
    for &versions in &args.sizes {
        let world = TestWorld::new().await;
        let group = central_group_name(&world.world.dev_package);
        let filling = Instant::now();
        fill_group(&world, group.as_str(), versions).await?;
        eprintln!("filled {group} with {versions} versions in {:?}", filling.elapsed());
        let (base, log) = counted(&world);
        let (model, evaluation, constraints) = dev_artifacts(&world);
        let (mut times, mut requests, mut waves, mut port_calls) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut last = BTreeMap::new();
        for round in 0..3 {
            let event = if round == 0 {
                world.decide(&world.world.dev_package, true).await
            } else {
                new_dev_version(&world, &world.world.names.dev_group, &model, Some((&evaluation, &constraints))).await?.1
            };
            let chaos = Chaos::counting();
            let ports = chaos.ports(&base);
            log.take();
            let started = Instant::now();
            let outcome = deliver(&ports, &world.world.config, &event).await?;
            times.push(ms(started.elapsed()));
            anyhow::ensure!(matches!(outcome, Outcome::Promoted(_)), "not promoted: {outcome:?}");
            let made = log.take();
            requests.push(calls::requests(&made));
            waves.push(calls::waves(&made));
            port_calls.push(chaos.calls().len());
            last = calls::by_operation(&made);
        }
        let summary: Vec<String> = last.iter().map(|(op, n)| format!("{op} {n}")).collect();
        writeln!(
            text,
            "| {versions} | {:.0} ms | {} | {} | {} | {} |",
            median(&mut times),
            list(&requests),
            list(&waves),
            list(&port_calls),
            summary.join(", ")
        )?;
        counts.push(requests[1..].to_vec());
    }
    let flat = counts.windows(2).all(|w| w[0] == w[1]);
    writeln!(text)?;
    writeln!(
        text,
        "Target: the number of calls does not grow with the group. **{}** (the first promotion of each row also assumes the dev account's read role, one STS call that is not counted here: aws-config's credentials provider sends it through an STS client of its own; its credentials are cached afterwards).",
        if flat { "pass" } else { "fail: the call count changes with the group size" }
    )?;
    writeln!(text, "No call lists the registry on the normal path: a duplicate is found by the ledger's conditional claim; `ListModelPackages` (newest 100 by creation time) is only asked when a takeover finds a registration in flight.")?;
    Ok(text)
}

/// Creates the central group if needed and `versions` versions in it, directly with the SDK.
async fn fill_group(world: &TestWorld, group: &str, versions: usize) -> Result<()> {
    let sagemaker = aws_sdk_sagemaker::Client::new(world.central());
    if sagemaker.describe_model_package_group().model_package_group_name(group).send().await.is_err() {
        sagemaker.create_model_package_group().model_package_group_name(group).send().await?;
    }
    let bucket = world.world.names.artifact_bucket.clone();
    let results: Vec<Result<()>> = futures::stream::iter(0..versions)
        .map(|i| {
            let (sagemaker, bucket, group) = (sagemaker.clone(), bucket.clone(), group.to_owned());
            async move {
                let container = ModelPackageContainerDefinition::builder()
                    .image("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1")
                    .model_data_url(format!("s3://{bucket}/filler/{i}/model.tar.gz"))
                    .build();
                let inference = InferenceSpecification::builder()
                    .containers(container)
                    .supported_content_types("text/csv")
                    .supported_response_mime_types("text/csv")
                    .build();
                sagemaker
                    .create_model_package()
                    .model_package_group_name(group)
                    .model_package_description(format!("filler version {i}"))
                    .model_approval_status(ModelApprovalStatus::PendingManualApproval)
                    .inference_specification(inference)
                    .send()
                    .await?;
                Ok(())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect()
}
