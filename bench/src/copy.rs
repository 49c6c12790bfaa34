//! 3. Artifact copy: CopyObject against parallel UploadPartCopy.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Result;
use promote_cli::local::put_object;
use promotion_core::domain::copy::CopySettings;
use promotion_core::ports::PromotePorts;
use promotion_core::promotion::Outcome;
use promotion_tests::TestWorld;

use crate::args::Args;
use crate::calls::{self, CallLog};
use crate::proc::{mem_available, moto_pid, PeakRss};
use crate::world::{counted, deliver, new_dev_version};

const MIB: u64 = 1024 * 1024;
const GIB: f64 = 1024.0 * MIB as f64;
const COPY_CALLS: [&str; 5] = ["S3.CopyObject", "S3.UploadPartCopy", "S3.CreateMultipartUpload", "S3.CompleteMultipartUpload", "S3.AbortMultipartUpload"];

const INTRO: &str = "One run on one moto server: a dev version naming only the artifact is promoted with each copy setting
(the whole handler runs: HEADs, claim, copy, verification, registration, card). MB/s is the artifact's size
over the handler's time; calls are the S3 copy requests sent. moto's peak RSS is sampled every 100 ms.
";

const READING: &str = "How to read this: moto 5.2.5 answers every `UploadPartCopy` by reading the *whole* source object into memory and
slicing the part out (`upload_part_copy` takes `key.value[start:end]`), and a single Python process serves all
requests; so on moto parallel parts cost one source-size of memory each and cannot beat one `CopyObject`. Real S3
copies server-side without either limit, and refuses `CopyObject` above 5 GiB. These figures therefore cannot
rank the copy settings for AWS, and the defaults (256 MiB threshold, 128 MiB parts, concurrency 8) are left as
they are. What carries over is the call count: 1 request for a single copy, `parts + 2` for a multipart one
(create, parts, complete), whatever the concurrency; the rest of a promotion adds the same ~16 calls.
";

/// One artifact, uploaded once and copied with each setting.
struct Artifact {
    model: String,
    size: u64,
    size_mib: u64,
    parts: u64,
}

pub async fn copies(args: &Args) -> Result<String> {
    let world = TestWorld::new().await;
    let pid = moto_pid();
    let (ports, log) = counted(&world);
    let mut text = INTRO.to_owned();
    writeln!(text)?;
    writeln!(text, "| artifact | copy | parts | concurrency | time | MB/s | S3 copy calls | all AWS calls | moto peak RSS |")?;
    writeln!(text, "|---|---|---|---|---|---|---|---|---|")?;
    let mut notes = Vec::new();
    let mut fastest: Vec<(String, f64)> = Vec::new();
    for (size_mib, part_mib, label) in [(args.copy_mib, 128, "large"), (args.many_parts_mib, 5, "many parts")] {
        let size = size_mib * MIB + 12_345;
        // moto holds the upload in memory next to the bench's own copy of the bytes.
        if mem_available() < 3 * size + 2 * 1024 * MIB {
            notes.push(format!("- {size_mib} MiB skipped: {:.1} GiB of memory available", mem_available() as f64 / GIB));
            continue;
        }
        let key = format!("bench/{label}/model.tar.gz");
        let uploading = Instant::now();
        let model = match upload_big(&world, &key, size).await {
            Ok(model) => model,
            Err(error) => {
                notes.push(format!("- {size_mib} MiB could not be uploaded to moto: {error:#}"));
                continue;
            }
        };
        eprintln!("uploaded {size_mib} MiB in {:?}", uploading.elapsed());
        let artifact = Artifact { model, size, size_mib, parts: size.div_ceil(part_mib * MIB) };
        let single = CopySettings { multipart_threshold: u64::MAX, part_size: part_mib * MIB, concurrency: 1 };
        let multipart = [1, 4, 16].map(|concurrency| CopySettings { multipart_threshold: 8 * MIB, part_size: part_mib * MIB, concurrency });
        for settings in std::iter::once(single).chain(multipart) {
            let (row, measured) = copy_case(&world, &ports, &log, pid, &artifact, settings).await?;
            writeln!(text, "{row}")?;
            if let Some(rate) = measured {
                fastest.push((format!("{size_mib} MiB, {} at concurrency {}", kind(&settings), settings.concurrency), rate));
            }
        }
        world.s3().delete_object().bucket(&world.world.names.dev_bucket).key(&key).send().await.ok();
    }
    writeln!(text)?;
    for note in notes {
        writeln!(text, "{note}")?;
    }
    if let Some((label, rate)) = fastest.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
        writeln!(text, "Fastest on this run: {label} at {rate:.0} MB/s.\n")?;
    }
    text.push_str(READING);
    Ok(text)
}

fn kind(settings: &CopySettings) -> &'static str {
    if settings.multipart_threshold == u64::MAX {
        "CopyObject"
    } else {
        "UploadPartCopy"
    }
}

/// Promotes a new dev version naming the artifact with `settings`: the table's row, and MB/s.
async fn copy_case(
    world: &TestWorld,
    ports: &PromotePorts,
    log: &CallLog,
    pid: Option<i32>,
    artifact: &Artifact,
    settings: CopySettings,
) -> Result<(String, Option<f64>)> {
    let Artifact { size, size_mib, .. } = *artifact;
    let multipart = kind(&settings) == "UploadPartCopy";
    let parts = if multipart { artifact.parts } else { 1 };
    let case = format!("| {size_mib} MiB | {} | {parts} | {}", kind(&settings), settings.concurrency);
    // moto reads the whole source object for every UploadPartCopy and keeps it while it
    // slices the part out: concurrent part copies cost a source's size each.
    let copies_at_once = if multipart { settings.concurrency.min(parts as usize) as u64 } else { 2 };
    let needed = (copies_at_once + 1) * size + 2 * 1024 * MIB;
    if mem_available() < needed {
        let skipped = format!("skipped: moto would need ~{:.1} GiB, {:.1} GiB available", needed as f64 / GIB, mem_available() as f64 / GIB);
        return Ok((format!("{case} | {skipped} | | | | |"), None));
    }
    let (_, event) = new_dev_version(world, &world.world.names.dev_group, &artifact.model, None).await?;
    let mut config = world.world.config.clone();
    config.copy = settings;
    let sampler = pid.map(PeakRss::start);
    log.take();
    let started = Instant::now();
    let outcome = deliver(ports, &config, &event).await;
    let elapsed = started.elapsed();
    let peak = sampler.map(PeakRss::stop).map_or("?".into(), |kib| format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0)));
    let made = log.take();
    let by_op = calls::by_operation(&made);
    let copy_calls: usize = COPY_CALLS.iter().filter_map(|op| by_op.get(*op)).sum();
    let requests = calls::requests(&made);
    let seconds = elapsed.as_secs_f64();
    match outcome {
        Ok(Outcome::Promoted(summary)) => {
            let copied = &summary.artifacts[0];
            anyhow::ensure!(copied.size == size, "copied {} of {size} bytes", copied.size);
            world.s3().delete_object().bucket(copied.central.bucket()).key(copied.central.key()).send().await.ok();
            let rate = size as f64 / 1e6 / seconds;
            Ok((format!("{case} | {seconds:.1} s | {rate:.0} | {copy_calls} | {requests} | {peak} |"), Some(rate)))
        }
        other => Ok((format!("{case} | failed after {seconds:.1} s: {other:?} | | {copy_calls} | {requests} | {peak} |"), None)),
    }
}

async fn upload_big(world: &TestWorld, key: &str, size: u64) -> Result<String> {
    let bytes: Vec<u8> = (0..size).map(|i| (i.wrapping_mul(2_654_435_761) >> 17) as u8).collect();
    put_object(world.dev(), &world.world.names.dev_bucket, key, bytes).await
}
