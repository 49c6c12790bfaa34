//! `promote audit verify [MODEL]`: each model's audit chain walked from its first entry to its
//! head. A table of one line per model (`-o wide`: the head's full hash; `-o json`: the
//! reports); the exit code is 1 when a chain is broken, naming the model, the seq and what is wrong.

use promotion_core::deployment::audit::{verify_chains, ChainReport, Verdict};
use promotion_core::domain::ids::GroupName;
use promotion_core::ports::{AuditTrail, PortResult};

use crate::exit::Exit;
use crate::ui;

/// The reports of `model`'s chain, or of every chain, and the exit code they call for.
pub async fn verify(trail: &dyn AuditTrail, model: Option<&GroupName>) -> PortResult<(Vec<ChainReport>, Exit)> {
    let reports = verify_chains(trail, model).await?;
    let exit = exit_code(&reports);
    Ok((reports, exit))
}

/// 1 when any chain is broken.
pub fn exit_code(reports: &[ChainReport]) -> Exit {
    if reports.iter().any(ChainReport::is_broken) {
        Exit::Refused
    } else {
        Exit::Ok
    }
}

/// One line per model, then what it adds up to.
pub fn render(reports: &[ChainReport], wide: bool, width: u16) -> String {
    if reports.is_empty() {
        return "no audit chain yet: nothing was recorded\n".into();
    }
    let rows: Vec<Vec<String>> = reports.iter().map(|report| row(report, wide)).collect();
    let mut out = ui::table(&["MODEL", "CHAIN", "DETAIL"], &rows, width);
    let broken = reports.iter().filter(|r| r.is_broken()).count();
    let recorded = reports.iter().filter(|r| !matches!(r.verdict, Verdict::Verified { entries: 0, .. })).count();
    out.push_str(&match (broken, recorded) {
        (0, 0) => "nothing recorded".to_owned(),
        (0, _) => ui::paint(ui::GOOD, format!("{} verified", count(recorded, "chain"))),
        _ => ui::paint(ui::BAD, format!("{broken} of {} broken: each line names the first broken link", count(recorded, "chain"))),
    });
    out.push('\n');
    out
}

/// A table's cells are plain: colour codes would count in its column widths.
fn row(report: &ChainReport, wide: bool) -> Vec<String> {
    let (verdict, detail) = match &report.verdict {
        Verdict::Verified { entries: 0, .. } => ("empty", "no audit entries".to_owned()),
        Verdict::Verified { entries, head } => {
            let hash = if wide { head.hash.as_str() } else { &head.hash[..12] };
            ("verified", format!("{}, head seq {} sha256 {hash}", count(*entries as usize, "entry"), head.seq))
        }
        Verdict::Broken { seq, what } => ("BROKEN", format!("seq {seq}: {what}")),
    };
    vec![report.model.to_string(), verdict.to_owned(), detail]
}

/// `1 chain`, `2 chains`; `1 entry`, `3 entries`.
fn count(n: usize, noun: &str) -> String {
    match (n, noun.strip_suffix('y')) {
        (1, _) => format!("1 {noun}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        (_, None) => format!("{n} {noun}s"),
    }
}

#[cfg(test)]
mod tests {
    use promotion_core::domain::chain::{Break, Head};

    use super::*;

    fn report(model: &str, verdict: Verdict) -> ChainReport {
        ChainReport { model: model.parse().unwrap(), verdict }
    }

    fn verified(entries: u64) -> Verdict {
        Verdict::Verified { entries, head: Head { seq: entries, hash: "ab".repeat(32) } }
    }

    #[test]
    fn a_broken_chain_is_named_with_its_seq_and_what_and_exits_1() {
        let reports =
            [report("churn-111111111111", verified(12)), report("fraud-111111111111", Verdict::Broken { seq: 4, what: Break::Removed { through: 4 } })];

        let text = anstream::adapter::strip_str(&render(&reports, false, 120)).to_string();

        assert_eq!(exit_code(&reports), Exit::Refused);
        let fraud = text.lines().find(|l| l.starts_with("fraud-111111111111")).unwrap();
        assert!(fraud.contains("BROKEN") && fraud.contains("seq 4: removed: no entry is stored from here through seq 4"), "{text}");
        let churn = text.lines().find(|l| l.starts_with("churn-111111111111")).unwrap();
        assert!(churn.contains("verified") && churn.contains("12 entries, head seq 12 sha256 abababababab") && !churn.contains(&"ab".repeat(32)), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        let columns = [lines[0].find("DETAIL"), lines[1].find("12 entries"), lines[2].find("seq 4")];
        assert!(columns[0].is_some() && columns.iter().all(|c| *c == columns[0]), "the columns line up: {text}");
        assert!(text.ends_with("1 of 2 chains broken: each line names the first broken link\n"), "{text}");
    }

    #[test]
    fn intact_chains_exit_0_and_the_wide_form_shows_the_whole_head() {
        let reports = [report("churn-111111111111", verified(1))];

        let text = anstream::adapter::strip_str(&render(&reports, true, u16::MAX)).to_string();

        assert_eq!(exit_code(&reports), Exit::Ok);
        assert!(text.contains(&"ab".repeat(32)) && text.contains("1 entry,") && text.ends_with("1 chain verified\n"), "{text}");
        assert_eq!(exit_code(&[]), Exit::Ok);
        assert_eq!(render(&[], false, 80), "no audit chain yet: nothing was recorded\n");
        let empty = anstream::adapter::strip_str(&render(&[report("churn-111111111111", verified(0))], false, 120)).to_string();
        assert!(empty.contains("empty") && empty.contains("no audit entries") && empty.ends_with("nothing recorded\n"), "{empty}");
    }
}
