//! `gatehouse import-leads`: users from an existing app's table, into the configured database.
//!
//! Exit codes: 0 when the run finished (skipped rows included), 1 when it failed or was
//! interrupted (committed batches stay; the same command finishes the work), 2 when the
//! command cannot work as given (bad source URL, table, or mapping).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Cli, Ctx};
use crate::import::report::{summary_lines, warning_lines};
use crate::import::{
    Field, ImportError, Job, Mapping, MappingFile, Options, Origin, Progress, Report, Source, Stop,
    Summary, TableName,
};
use crate::store::mask_url;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Source database URL: sqlite://PATH, postgres://..., mysql://... (MariaDB too)
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// Source table [default: `table` in the mapping file, else leads]
    #[arg(long)]
    pub table: Option<String>,
    /// TOML file naming the source columns (see config/leads-mapping.example.toml)
    #[arg(long, value_name = "FILE")]
    pub mapping: Option<PathBuf>,
    /// Read and check every row and print the summary, but write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Users written per transaction
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// Write every skipped row (id and reason) and replaced value to this JSON file
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

const USAGE: u8 = 2;

pub async fn run(cli: &Cli, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let file = match &args.mapping {
        Some(path) => match read_mapping(path) {
            Ok(f) => f,
            Err(e) => return Ok(usage(e)),
        },
        None => MappingFile::default(),
    };
    let table_name = args
        .table
        .clone()
        .or_else(|| file.table.clone())
        .unwrap_or_else(|| "leads".into());
    let table = TableName::parse(&table_name);
    let source = match Source::connect(&args.from).await {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let columns = match source.columns(&table).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let mapping = match Mapping::resolve(&file, &columns) {
        Ok(m) => m,
        Err(e) => return failed(ImportError::Mapping(e)),
    };
    let total = source.count(&table).await?;
    let label = format!("{} table {table}", mask_url(&args.from));
    println!("source: {} {label} ({total} rows)", source.engine());
    print_mapping(&mapping);
    let ctx = Ctx::open(cli).await?;
    println!(
        "target: {}{}",
        mask_url(&ctx.settings.database.url),
        if args.dry_run {
            " (dry run: nothing will be written)"
        } else {
            ""
        }
    );
    let opts = Options {
        batch: usize::try_from(args.batch).unwrap_or(1000),
        dry_run: args.dry_run,
        source_label: label.clone(),
    };
    let stop = watch_interrupts();
    let mut progress = Bar::new(total);
    let job = Job {
        source: &source,
        table: &table,
        mapping: &mapping,
        usernames: &ctx.settings.security.username_rules,
    };
    let outcome = crate::import::import(
        job,
        &ctx.store,
        &opts,
        ctx.accounts.now(),
        &mut progress,
        &stop,
    )
    .await;
    progress.finish();
    source.close().await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return failed(e),
    };
    println!(
        "{}",
        if args.dry_run {
            "summary (dry run: nothing was written):"
        } else {
            "summary:"
        }
    );
    for line in summary_lines(&outcome.summary, args.dry_run) {
        println!("{line}");
    }
    for line in warning_lines(&outcome.warnings) {
        eprintln!("{line}");
    }
    if let Some(path) = &args.report {
        let report = Report {
            source: &label,
            table: &table_name,
            dry_run: args.dry_run,
            complete: outcome.stopped.is_none(),
            summary: &outcome.summary,
            skipped: &outcome.skipped,
            warnings: &outcome.warnings,
        };
        write_report(path, &report)?;
        println!("report: {}", path.display());
    }
    match outcome.stopped {
        None => Ok(ExitCode::SUCCESS),
        Some(Stop::Interrupted) => {
            eprintln!(
                "interrupted after {} rows: the batches written so far are complete; run the \
                 same command again to finish",
                outcome.summary.rows
            );
            Ok(ExitCode::FAILURE)
        }
        Some(Stop::Failed(e)) => failed(e),
    }
}

fn read_mapping(path: &Path) -> anyhow::Result<MappingFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the mapping file {}", path.display()))?;
    MappingFile::parse(&text).with_context(|| format!("in the mapping file {}", path.display()))
}

fn usage(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::from(USAGE)
}

fn failed(e: ImportError) -> anyhow::Result<ExitCode> {
    let code = if e.is_usage() {
        ExitCode::from(USAGE)
    } else {
        ExitCode::FAILURE
    };
    eprintln!("error: {:#}", anyhow::Error::from(e));
    Ok(code)
}

fn print_mapping(m: &Mapping) {
    println!("column mapping (gatehouse field <- source column):");
    for (field, column, origin) in &m.fields {
        let note = match (field, origin) {
            (Field::Id, _) => "  (kept as legacy_lead_id)",
            (_, Origin::MappingFile) => "  (mapping file)",
            (_, Origin::Detected) => "",
        };
        println!("  {:<20} <- {}{note}", field.key(), column.name);
    }
    let unmapped: Vec<&str> = Field::ALL
        .iter()
        .filter(|f| m.column(**f).is_none())
        .map(|f| f.key())
        .collect();
    if !unmapped.is_empty() {
        println!("  not in the source (defaults): {}", unmapped.join(", "));
    }
    if !m.ignored.is_empty() {
        println!("  source columns not imported: {}", m.ignored.join(", "));
    }
}

fn write_report(path: &Path, report: &Report<'_>) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(report)?;
    std::fs::write(path, json).with_context(|| format!("writing the report {}", path.display()))
}

/// The first Ctrl-C asks the import to stop after the batch in flight; a second one quits at
/// once (the open transaction is rolled back, so that is safe too).
fn watch_interrupts() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::Relaxed);
            eprintln!("stopping after the current batch (Ctrl-C again to quit now)");
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    stop
}

/// A bar with rows/s and ETA on a terminal; elsewhere a plain line every tenth of the table.
enum Bar {
    Terminal(ProgressBar),
    Plain {
        total: u64,
        next: u64,
        started: Instant,
    },
}

impl Bar {
    fn new(total: u64) -> Bar {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) =
                ProgressStyle::with_template("{bar:32} {pos}/{len} rows  {msg}  ETA {eta}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            Bar::Terminal(bar)
        } else {
            Bar::Plain {
                total,
                next: step(total),
                started: Instant::now(),
            }
        }
    }

    fn finish(&self) {
        if let Bar::Terminal(bar) = self {
            bar.finish_and_clear();
        }
    }
}

fn step(total: u64) -> u64 {
    (total / 10).max(1)
}

impl Progress for Bar {
    fn advance(&mut self, rows_read: u64, summary: &Summary) {
        match self {
            Bar::Terminal(bar) => {
                bar.set_position(rows_read);
                bar.set_message(format!(
                    "{:.0} rows/s, {} imported",
                    bar.per_sec(),
                    summary.imported
                ));
            }
            Bar::Plain {
                total,
                next,
                started,
            } => {
                if rows_read < *next {
                    return;
                }
                while *next <= rows_read {
                    *next += step(*total);
                }
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                eprintln!(
                    "progress: {rows_read}/{total} rows read, {} imported, {:.0} rows/s",
                    summary.imported,
                    rows_read as f64 / secs
                );
            }
        }
    }
}
