//! How the CLI speaks to people: the output form (`-o`), colour only on a terminal and never with
//! `NO_COLOR`, tables fitted to the terminal's width, short names, a spinner while it waits, and
//! logs on stderr at WARN unless `-v`.

use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use comfy_table::{presets, ContentArrangement, Table};
use promotion_core::domain::ids::{GroupName, ModelPackageArn};

/// What a command prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Output {
    /// Concise lines and tables with short names.
    #[default]
    Text,
    /// Tables with every column, full ARNs and names.
    Wide,
    /// The full record, as JSON.
    Json,
}

static OUTPUT: OnceLock<Output> = OnceLock::new();

/// Set once, from the command line; the library's default (tests) is `Text`.
pub fn set_output(output: Output) {
    OUTPUT.set(output).ok();
}

pub fn output() -> Output {
    OUTPUT.get().copied().unwrap_or_default()
}

/// Colour on a stream: only on a terminal, and never when `NO_COLOR` is set (and not empty).
pub fn colour(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

pub const GOOD: Style = AnsiColor::Green.on_default();
pub const BAD: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red))).bold();
pub const WARN: Style = AnsiColor::Yellow.on_default();
pub const HEADING: Style = Style::new().bold();
pub const DIM: Style = Style::new().dimmed();

/// `text` in `style`; anstream strips the codes where colour is off.
pub fn paint(style: Style, text: impl std::fmt::Display) -> String {
    format!("{style}{text}{style:#}")
}

/// A line on stdout, above the spinner if one turns.
pub fn say(line: impl std::fmt::Display) {
    let line = line.to_string();
    let print = || anstream::println!("{line}");
    match SPINNER.lock().ok().and_then(|active| active.clone()) {
        Some(bar) => bar.suspend(print),
        None => print(),
    }
}

/// `churn-prediction-111111111111 v3`: a version as people name it.
pub fn short(package: &ModelPackageArn) -> String {
    format!("{} v{}", package.group(), package.version())
}

/// `v3` within `model`'s own rows; a version of another group (a dev source) keeps its group.
pub fn short_in(model: &GroupName, package: &ModelPackageArn) -> String {
    if package.group() == model {
        format!("v{}", package.version())
    } else {
        format!("{} {} v{}", package.account(), package.group(), package.version())
    }
}

/// An ARN, URI or name shortened in running text: model package ARNs to their short names.
pub fn shorten(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            let bare = word.trim_end_matches([',', ';', ')', '.']);
            match bare.parse::<ModelPackageArn>() {
                Ok(package) => word.replacen(bare, &short(&package), 1),
                Err(_) => word.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The width tables fit in: the terminal's, else `COLUMNS`, else 120.
pub fn width() -> u16 {
    if let Some((terminal_size::Width(columns), _)) = terminal_size::terminal_size_of(std::io::stdout()) {
        return columns;
    }
    std::env::var("COLUMNS").ok().and_then(|raw| raw.parse().ok()).unwrap_or(120)
}

/// The width a table of `output` fits in: the terminal's, except that the wide form is never
/// wrapped (as `kubectl get -o wide`).
pub fn fit(output: Output) -> u16 {
    if output == Output::Wide {
        u16::MAX
    } else {
        width()
    }
}

/// Aligned columns without borders, as kubectl prints them, wrapped to fit `width`.
pub fn table(header: &[&str], rows: &[Vec<String>], width: u16) -> String {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_content_arrangement(ContentArrangement::Dynamic).set_width(width).set_header(header.to_vec());
    for row in rows {
        table.add_row(row.clone());
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let mut out = String::new();
    for (i, line) in table.lines().enumerate() {
        let line = line.trim_end();
        out.push_str(&if i == 0 { paint(HEADING, line) } else { line.to_owned() });
        out.push('\n');
    }
    out
}

static SPINNER: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// A spinner on stderr while a command waits (on an endpoint, a copy), on a terminal only;
/// it goes when dropped.
pub struct Waiting(Option<indicatif::ProgressBar>);

pub fn waiting(message: impl Into<String>) -> Waiting {
    if !std::io::stderr().is_terminal() || output() == Output::Json {
        return Waiting(None);
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed:.dim}").expect("a valid template"));
    bar.set_message(message.into());
    bar.enable_steady_tick(Duration::from_millis(100));
    if let Ok(mut active) = SPINNER.lock() {
        *active = Some(bar.clone());
    }
    Waiting(Some(bar))
}

impl Waiting {
    pub fn set_message(&self, message: impl Into<String>) {
        if let Some(bar) = &self.0 {
            bar.set_message(message.into());
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
            if let Ok(mut active) = SPINNER.lock() {
                active.take();
            }
        }
    }
}

/// Logs go to stderr: WARN, INFO with `-v`, DEBUG with `-vv`; without `-v`, `RUST_LOG` when set.
/// The Lambda runtime's targets stay capped as in the functions (promotion_aws::telemetry).
pub fn init_logs(verbose: u8) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let directive = match verbose {
        0 => std::env::var("RUST_LOG").ok().filter(|raw| !raw.trim().is_empty()).unwrap_or_else(|| "warn".into()),
        1 => "info".into(),
        _ => "debug".into(),
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(|| StderrAboveSpinner)
        .with_ansi(colour(std::io::stderr().is_terminal()))
        .with_target(verbose > 1)
        .without_time()
        .compact()
        .with_filter(promotion_aws::telemetry::filter(Some(&directive)));
    tracing_subscriber::registry().with(layer).try_init().ok();
}

/// stderr, written above the spinner while one turns.
struct StderrAboveSpinner;

impl std::io::Write for StderrAboveSpinner {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match SPINNER.lock().ok().and_then(|active| active.clone()) {
            Some(bar) => bar.suspend(|| std::io::stderr().write(bytes)),
            None => std::io::stderr().write(bytes),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// How long ago `at` was, as `kubectl get` says it: `42s`, `5m`, `3h`, `2d`.
pub fn age(at: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> String {
    let seconds = (now - at).num_seconds().max(0);
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86_400 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_package_arns_read_as_their_group_and_version() {
        let arn: ModelPackageArn = "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-prediction-111111111111/3".parse().unwrap();
        assert_eq!(short(&arn), "churn-prediction-111111111111 v3");
        assert_eq!(short_in(arn.group(), &arn), "v3");
        let dev: ModelPackageArn = "arn:aws:sagemaker:us-east-1:111111111111:model-package/churn-prediction/3".parse().unwrap();
        assert_eq!(short_in(arn.group(), &dev), "111111111111 churn-prediction v3");
        assert_eq!(shorten(&format!("deployed {arn}, config x")), "deployed churn-prediction-111111111111 v3, config x");
    }

    #[test]
    fn tables_align_their_columns_and_fit_the_width() {
        let rows = vec![vec!["churn-prediction-111111111111".to_owned(), "v3".into()], vec!["fraud".into(), "v12".into()]];
        let text = anstream::adapter::strip_str(&table(&["MODEL", "DEV"], &rows, 80)).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let column = lines[0].find("DEV").unwrap();
        assert_eq!((lines[1].find("v3"), lines[2].find("v12")), (Some(column), Some(column)), "{text}");
        let long = vec![vec!["word ".repeat(40), "v1".into()]];
        let narrow = anstream::adapter::strip_str(&table(&["DETAIL", "V"], &long, 40)).to_string();
        assert!(narrow.lines().all(|line| line.chars().count() <= 40), "{narrow}");
    }

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        let now = chrono::Utc::now();
        assert_eq!(age(now - chrono::Duration::seconds(42), now), "42s");
        assert_eq!(age(now - chrono::Duration::minutes(5), now), "5m");
        assert_eq!(age(now - chrono::Duration::hours(50), now), "2d");
    }
}
