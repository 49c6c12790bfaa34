//! `make bench`: measures the service on this machine against moto's server on loopback and
//! writes docs/benchmarks.md. Never part of `make test`. `--help` lists the flags.

mod args;
mod burst;
mod calls;
mod cold;
mod copy;
mod growth;
mod parsing;
mod proc;
mod report;
mod runtime_api;
mod world;

use anyhow::Result;
use clap::Parser;

use args::{Args, Section};

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    eprintln!("moto on {}", promotion_tests::moto_endpoint());
    let mut sections = Vec::new();
    for section in Section::ALL.into_iter().filter(|s| args.wanted(*s)) {
        let result = match section {
            Section::Cold => cold::cold_starts(&args).await,
            Section::Growth => growth::growth(&args).await,
            Section::Copy => copy::copies(&args).await,
            Section::Burst => burst::burst(&args).await,
            Section::Parse => parsing::criterion(&args),
        };
        let body = result.unwrap_or_else(|error| format!("**Could not be measured:** {error:#}\n"));
        eprintln!("== {}\n{body}", section.title());
        sections.push(format!("## {}\n\n{body}", section.title()));
    }
    let report = format!("{}\n{}", report::header(&args)?, sections.join("\n"));
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, report)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
