pub mod card;
pub mod copy;
pub mod event;
pub mod ids;
pub mod ledger;
pub mod lineage;
pub mod naming;
pub mod package;
