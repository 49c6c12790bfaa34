//! The deploy pipeline as the service sees it: its stages and the states CodePipeline reports.

use std::fmt;

/// The stages of the deploy pipeline, as `infra/pipeline.json` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PipelineStage {
    DeployTest,
    TestModel,
    /// The governance officers' manual approval; its one action bears the stage's name.
    ApproveProd,
    DeployProd,
}

impl PipelineStage {
    pub const ALL: [Self; 4] = [Self::DeployTest, Self::TestModel, Self::ApproveProd, Self::DeployProd];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DeployTest => "DeployTest",
            Self::TestModel => "TestModel",
            Self::ApproveProd => "ApproveProd",
            Self::DeployProd => "DeployProd",
        }
    }

    /// `None` for a stage the service does not know (a pipeline changed by hand).
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

impl fmt::Display for PipelineStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The name of the manual approval's action, which is its stage's.
pub const APPROVAL_ACTION: &str = PipelineStage::ApproveProd.as_str();

/// The state of a pipeline execution, a stage or an action, as CodePipeline's state-change events
/// spell it (`STARTED`, `SUCCEEDED`…). A state this code does not know is kept as it came.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PipelineState {
    Started,
    Succeeded,
    Failed,
    Canceled,
    Resumed,
    Stopping,
    Stopped,
    Superseded,
    Abandoned,
    Other(String),
}

impl PipelineState {
    const KNOWN: [Self; 9] =
        [Self::Started, Self::Succeeded, Self::Failed, Self::Canceled, Self::Resumed, Self::Stopping, Self::Stopped, Self::Superseded, Self::Abandoned];

    /// As the event spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Started => "STARTED",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Canceled => "CANCELED",
            Self::Resumed => "RESUMED",
            Self::Stopping => "STOPPING",
            Self::Stopped => "STOPPED",
            Self::Superseded => "SUPERSEDED",
            Self::Abandoned => "ABANDONED",
            Self::Other(raw) => raw,
        }
    }

    /// Either case: events spell states in capitals, audit actions in lower case.
    pub fn parse(raw: &str) -> Self {
        Self::KNOWN.into_iter().find(|s| s.as_str().eq_ignore_ascii_case(raw)).unwrap_or_else(|| Self::Other(raw.to_owned()))
    }

    /// In lower case, as audit actions carry it.
    pub fn lower(&self) -> String {
        self.as_str().to_lowercase()
    }
}

impl fmt::Display for PipelineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What kind of action changed state: the manual approval, or one of the functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionCategory {
    Approval,
    Other(String),
}

impl ActionCategory {
    pub fn parse(raw: &str) -> Self {
        if raw == "Approval" {
            Self::Approval
        } else {
            Self::Other(raw.to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_and_states_read_back_as_they_are_written() {
        for stage in PipelineStage::ALL {
            assert_eq!(PipelineStage::parse(stage.as_str()), Some(stage));
        }
        assert_eq!(APPROVAL_ACTION, "ApproveProd");
        assert_eq!(PipelineStage::parse("Build"), None);
        for state in PipelineState::KNOWN {
            assert_eq!(PipelineState::parse(state.as_str()), state);
            assert_eq!(PipelineState::parse(&state.lower()), state);
        }
        assert_eq!(PipelineState::parse("PAUSED"), PipelineState::Other("PAUSED".into()));
        assert_eq!(format!("{:<10}|", PipelineStage::DeployProd), "DeployProd|");
    }
}
