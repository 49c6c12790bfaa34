//! The `promote` command's library: the local AWS world shared by the demo and the tests,
//! and the operator commands.

pub mod audit;
pub mod exit;
pub mod governance;
pub mod history;
pub mod local;
pub mod pipeline;
pub mod replay;
pub mod rollback_role;
pub mod status;
pub mod ui;
