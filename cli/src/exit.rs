//! Every error the CLI ends with: one line of cause, one line of what to do, and an exit code
//! that tells a script what kind of failure it was.

use std::fmt;
use std::process::ExitCode;

use promotion_core::config::ConfigError;
use promotion_core::domain::deploy::StageConfigError;
use promotion_core::domain::ids::IdError;
use promotion_core::failure::Failure;
use promotion_core::ports::PortError;

/// The exit codes, as `promote --help` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// The service refused or rejected it (a `Rejected.*` error, tests that failed, a failed
    /// pipeline), or an audit chain is broken: running it again changes nothing until the cause
    /// is fixed.
    Refused = 1,
    /// The command line is wrong: an unknown option, a malformed model name or ARN, a missing file.
    Usage = 2,
    /// AWS could not be reached or failed transiently (a `Retryable.*` error): try again.
    Aws = 3,
    /// The configuration is missing or invalid (the environment, `STAGE_CONFIG`).
    Config = 4,
}

/// The help text's list, and README's.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  refused or rejected by the service (Rejected.* errors, failed tests, a failed pipeline),
     or a broken audit chain (promote audit verify)
  2  usage: a wrong option, model name, ARN or file
  3  AWS unreachable or failing transiently (Retryable.* errors): try again
  4  configuration missing or invalid (source .local/env for the local AWS)";

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// A failure as the CLI reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub exit: Exit,
    pub cause: String,
    pub hint: String,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cause)
    }
}

impl std::error::Error for Failed {}

pub fn failed(exit: Exit, cause: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    Failed { exit, cause: cause.into(), hint: hint.into() }.into()
}

/// An environment variable the command needs.
pub fn env_var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty()).ok_or_else(|| unset(name))
}

/// The variable `name` is missing from the environment.
pub fn unset(name: &str) -> anyhow::Error {
    failed(Exit::Config, format!("{name} is not set"), CONFIG_HINT)
}

const CONFIG_HINT: &str = "for the local AWS run `make local-up` and `source .local/env`; otherwise set it as README's configuration tables say";

/// An operation's typed error: refused (1) or transient (3), as its `Rejected.*`/`Retryable.*` says.
pub fn failure<F: Failure + Send + Sync + 'static>(error: F) -> anyhow::Error {
    let (exit, hint) = if error.is_retryable() { (Exit::Aws, retry_hint(&error.to_string())) } else { (Exit::Refused, refusal_hint(error.name())) };
    failed(exit, format!("{} ({})", crate::ui::shorten(&one_line(&error.to_string())), error.error_type()), hint)
}

/// What to do about a refusal, by the error's name.
fn refusal_hint(name: &str) -> String {
    match name {
        "NoPendingApproval" => "`promote status` shows what waits where: only a version the pipeline holds at its prod approval can be answered".into(),
        "NothingToRollBack" | "NoApprovedRollbackTarget" => {
            "`promote history MODEL` lists what ran on the stage; deploy an approved version through the pipeline instead".into()
        }
        "EvidenceChanged" => "do not approve: the test report is not the bytes test-model recorded; `promote history MODEL` shows the recorded report \
                              (key, version, SHA-256), and the evidence bucket's versions of that key show who wrote over it"
            .into(),
        "NoPassedTests" => "no passed test run of this version is recorded for the execution: `promote history MODEL` shows what the tests did".into(),
        "EndpointFailed" | "EndpointVanished" => "`promote status` shows the endpoint as it is now; `promote history MODEL` what led there".into(),
        _ => "`promote history MODEL` shows what the service recorded; fix the cause, then run it again".into(),
    }
}

fn retry_hint(message: &str) -> String {
    if unreachable(message) {
        let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "AWS".into());
        format!("cannot reach {endpoint}: for the local AWS run `make local-up` and `source .local/env`; otherwise check the network and region")
    } else {
        "a transient AWS failure (throttling, a 5xx, an endpoint still settling): run the command again; -v shows the calls".into()
    }
}

fn unreachable(message: &str) -> bool {
    ["dispatch failure", "connection refused", "Connection refused", "timed out"].iter().any(|sign| message.contains(sign))
}

/// One line, without the SDK's debug rendering of the error it already said in words.
fn one_line(text: &str) -> String {
    let said = ["(DispatchFailure(", "(ServiceError(", "(TimeoutError(", "(ResponseError(", "(ConstructionFailure("]
        .iter()
        .filter_map(|debug| text.find(debug))
        .min()
        .map_or(text, |at| &text[..at]);
    said.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The cause, the hint and the exit code of any error a command returned.
pub fn explain(error: &anyhow::Error) -> Failed {
    if let Some(failed) = error.downcast_ref::<Failed>() {
        return failed.clone();
    }
    let cause = crate::ui::shorten(&one_line(&format!("{error:#}")));
    let chain = || error.chain();
    if chain().any(|e| e.is::<ConfigError>() || e.is::<StageConfigError>()) {
        return Failed { exit: Exit::Config, cause, hint: CONFIG_HINT.into() };
    }
    if chain().any(|e| e.is::<IdError>()) {
        let hint = "MODEL is a central group such as churn-prediction-111111111111; --package takes a model package ARN \
                    (arn:aws:sagemaker:REGION:ACCOUNT:model-package/GROUP/VERSION)";
        return Failed { exit: Exit::Usage, cause, hint: hint.into() };
    }
    if let Some(io) = chain().find_map(|e| e.downcast_ref::<std::io::Error>()) {
        if matches!(io.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied) {
            return Failed { exit: Exit::Usage, cause, hint: "check the path: it is read from the current directory".into() };
        }
    }
    if let Some(port) = chain().find_map(|e| e.downcast_ref::<PortError>()) {
        return match port.is_retryable() {
            true => Failed { exit: Exit::Aws, hint: retry_hint(&port.message), cause },
            false => Failed { exit: Exit::Refused, cause, hint: "AWS refused the call: check the credentials, the role and that the resource exists".into() },
        };
    }
    if unreachable(&cause) {
        return Failed { exit: Exit::Aws, hint: retry_hint(&cause), cause };
    }
    Failed { exit: Exit::Refused, cause, hint: "run it again with -v (or -vv) to see what the command did".into() }
}

/// Prints `error: CAUSE` and `hint: WHAT TO DO` on stderr; returns the exit code.
pub fn report(error: &anyhow::Error) -> ExitCode {
    let failed = explain(error);
    anstream::eprintln!("{} {}", crate::ui::paint(crate::ui::BAD, "error:"), failed.cause);
    anstream::eprintln!("{} {}", crate::ui::paint(crate::ui::DIM, "hint:"), failed.hint);
    failed.exit.into()
}

#[cfg(test)]
mod tests {
    use anyhow::Context as _;
    use promotion_core::deployment::approval::ApprovalError;
    use promotion_core::ports::FailureKind;

    use super::*;

    #[test]
    fn each_kind_of_failure_has_its_exit_code_and_a_hint() {
        let config = anyhow::Error::from(ConfigError::Missing("LEDGER_TABLE"));
        let usage = anyhow::Error::from("not an arn".parse::<promotion_core::domain::ids::ModelPackageArn>().unwrap_err()).context("--package");
        let throttled = anyhow::Error::from(PortError::new("DescribeEndpoint", FailureKind::Retryable, "ThrottlingException: slow down"));
        let unreachable = Err::<(), _>(std::io::Error::other("dispatch failure: connection refused")).context("assume role in the emulator").unwrap_err();
        let refused = failure(ApprovalError::NoPendingApproval("fraud-detection-111111111111".into()));
        let missing_file = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::NotFound)).context("read event.json");

        let explained: Vec<Exit> = [&config, &usage, &throttled, &unreachable, &refused, &missing_file].iter().map(|e| explain(e).exit).collect();

        assert_eq!(explained, [Exit::Config, Exit::Usage, Exit::Aws, Exit::Aws, Exit::Refused, Exit::Usage]);
        for error in [&config, &usage, &throttled, &unreachable, &refused, &missing_file] {
            let failed = explain(error);
            assert!(!failed.cause.is_empty() && !failed.cause.contains('\n') && !failed.hint.is_empty(), "{failed:?}");
        }
        assert!(explain(&refused).cause.ends_with("(Rejected.NoPendingApproval)"), "{:?}", explain(&refused));
        assert!(explain(&refused).hint.contains("promote status"));
        let sdk = "Scan failed: dispatch failure: io error: Connection refused (os error 111) (DispatchFailure(DispatchFailure { source: .. }))";
        assert_eq!(one_line(sdk), "Scan failed: dispatch failure: io error: Connection refused (os error 111)");
    }

    #[test]
    fn the_help_lists_every_exit_code() {
        for exit in [Exit::Ok, Exit::Refused, Exit::Usage, Exit::Aws, Exit::Config] {
            assert!(EXIT_CODES.contains(&format!("  {}  ", exit as u8)), "{exit:?}");
        }
    }
}
