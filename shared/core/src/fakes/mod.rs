//! In-memory fakes of the ports, one file per port, for tests of the domain and of the handlers.
//! They keep the rules the real services enforce (conditional writes, composite checksums, card
//! versions).

mod cards;
mod claim_cases;
mod endpoints;
mod events;
mod images;
mod ledger;
mod logs;
mod notifier;
mod pipeline;
mod registry;
mod store;
mod world;

pub use cards::FakeCards;
pub use claim_cases::run_claim_case;
pub use endpoints::{FakeEndpoint, FakeEndpoints, FakeStageSessions, Fault, Transition};
pub use events::FakePublisher;
pub use images::FakeImages;
pub use ledger::{FakeChains, FakeLedger};
pub use logs::CapturedLogs;
pub use notifier::FakeNotifier;
pub use pipeline::{job_parameters, GOVERNANCE_OFFICER};
pub use pipeline::{FakeJobs, FakeRuns, JobAnswer};
pub use registry::{FakeRegistry, FakeSessions};
pub use store::{BeforeCopy, FakeStore, HookedStore};
pub use world::{
    stage_config_json, world_execution, world_job_parameters, DeployWorld, PromoteWorld, DEPLOY_WORLD_EVIDENCE_BUCKET, DEPLOY_WORLD_PACKAGE,
    DEPLOY_WORLD_SOURCE, PROMOTE_WORLD_DIGEST, PROMOTE_WORLD_IMAGE, PROMOTE_WORLD_MODEL, PROMOTE_WORLD_SOURCE, WORLD_IMAGE, WORLD_MODEL_DATA,
};
