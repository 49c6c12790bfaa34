//! The bench's flags.

use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};

/// `make bench`: measures the service on this machine against moto's server on loopback and
/// writes the report (docs/benchmarks.md).
///
/// MOTO_SERVER names the `moto_server` to start (on a free loopback port). Section `cold` needs
/// the release binaries of the five functions; section `parse` needs criterion's estimates
/// (`cargo bench -p promotion-bench --bench parse`). `make bench` does both first.
#[derive(Debug, Parser)]
#[command(name = "promotion-bench")]
pub struct Args {
    /// The report to write.
    #[arg(long, default_value_os_t = root().join("docs/benchmarks.md"))]
    pub out: PathBuf,
    /// Where the release binaries of the five functions are (section `cold`).
    #[arg(long, default_value_os_t = root().join("target/release"))]
    pub bin_dir: PathBuf,
    /// Where `cargo bench --bench parse` left criterion's estimates (section `parse`).
    #[arg(long, default_value_os_t = root().join("target/criterion"))]
    pub criterion_dir: PathBuf,
    /// The command the report names as having produced it.
    #[arg(long, default_value = "make bench")]
    pub command: String,
    /// Runs per function for cold start and memory (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Size of the large artifact of the copy section, in MiB (copied in 128 MiB parts).
    #[arg(long, default_value_t = 1024)]
    pub copy_mib: u64,
    /// Size of the artifact copied in many 5 MiB parts, in MiB.
    #[arg(long, default_value_t = 256)]
    pub many_parts_mib: u64,
    /// Distinct approvals in the burst (each is also delivered a second time).
    #[arg(long, default_value_t = 500)]
    pub burst: usize,
    /// Deliveries handled at once in the burst.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Versions already in the central group, one row each (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    pub sizes: Vec<usize>,
    /// Only these sections (comma-separated); all by default.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<Section>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Section {
    /// 1. Cold start and peak memory of the release binaries.
    Cold,
    /// 2. Promotion cost as the central group grows.
    Growth,
    /// 3. Artifact copy: CopyObject against parallel UploadPartCopy.
    Copy,
    /// 4. Burst: distinct approvals and duplicate deliveries.
    Burst,
    /// 5. Event parsing and validation (criterion's estimates).
    Parse,
}

impl Section {
    pub const ALL: [Section; 5] = [Section::Cold, Section::Growth, Section::Copy, Section::Burst, Section::Parse];

    pub fn title(self) -> &'static str {
        match self {
            Section::Cold => "1. Cold start and peak memory of the release binaries",
            Section::Growth => "2. Promotion cost as the central group grows",
            Section::Copy => "3. Artifact copy: CopyObject against parallel UploadPartCopy",
            Section::Burst => "4. Burst: distinct approvals and duplicate deliveries",
            Section::Parse => "5. Event parsing and validation (criterion)",
        }
    }
}

impl Args {
    pub fn wanted(&self, section: Section) -> bool {
        self.only.is_empty() || self.only.contains(&section)
    }
}

/// The workspace's root.
pub fn root() -> PathBuf {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR"));
    bench.parent().unwrap_or(bench).to_path_buf()
}
