//! `strongroom`, the reference command-line tool of the strongroom vault libraries:
//! nothing but wiring and I/O around the `strongroom` facade.

mod app;
mod cli;
mod cmd_keys;
mod cmd_members;
mod cmd_transfer;
mod cmd_vault;
mod demo;
mod input;
mod keyholders;
mod location;
mod output;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::app::App;
use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    quiet_broken_pipe();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_tracing(cli.global.verbose);
    if let Some(warning) = vault_password_warning(&cli, &matches) {
        eprintln!("{warning}");
    }
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", render(&e));
            ExitCode::from(1)
        }
    }
}

/// A warning when `--vault` on the command line is a PostgreSQL connection string with a
/// password: the process list and the shell history show the command line to others.
fn vault_password_warning(cli: &Cli, matches: &clap::ArgMatches) -> Option<&'static str> {
    let from_argv = matches.value_source("vault") == Some(clap::parser::ValueSource::CommandLine);
    let vault = cli.global.vault.as_deref()?;
    let postgres = matches!(
        location::Location::parse(Some(vault)),
        Ok(location::Location::Postgres(_))
    );
    (from_argv && postgres && location::has_password(vault)).then_some(
        "warning: the --vault connection string holds a password, which other users can read in the process list and which stays in your shell history: pass the connection string in the STRONGROOM_VAULT environment variable instead, or connect without a password (local socket with peer authentication)",
    )
}

/// `strongroom list ns | head -1`: stdout closes early, printing fails. Exit like a process
/// killed by SIGPIPE (141) instead of reporting a panic; other panics print one line.
fn quiet_broken_pipe() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error{at}: {msg}");
    }));
}

/// Targets whose debug and trace logs carry SQL parameters (through the `log` bridge):
/// keyholder stanzas, wrapped keys and encrypted records. Capped at `info` by `-v` counts.
const QUIET_TARGETS: &[&str] = &["tokio_postgres", "postgres", "r2d2"];

/// The filter of `-v` counts: warnings only by default, info, debug, trace; the database
/// driver targets never below info.
fn verbosity_filter(verbose: u8) -> String {
    let base = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let mut directives = vec![base.to_owned()];
    if verbose >= 2 {
        directives.extend(QUIET_TARGETS.iter().map(|t| format!("{t}=info")));
    }
    directives.join(",")
}

/// Logs to stderr: `RUST_LOG` when set (with a warning when it lets debug logs through,
/// since those of the database driver carry SQL parameters), else by `-v` count.
fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::filter::LevelFilter;
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok());
    let filter = match from_env {
        Some(f) => {
            if f.max_level_hint().is_none_or(|l| l > LevelFilter::INFO) {
                eprintln!(
                    "warning: RUST_LOG is set and allows debug logs: those of the database driver (tokio_postgres, postgres, r2d2) may include SQL parameters such as keyholder stanzas; unset RUST_LOG and use -v, -vv or -vvv to keep them out"
                );
            }
            f
        }
        None => EnvFilter::new(verbosity_filter(verbose)),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(verbose >= 2)
        .try_init();
}

/// The error and its causes on one line, leaving out a cause whose text the message
/// already contains.
fn render(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Runs a parsed command line; the result is the exit code.
pub(crate) fn run(cli: Cli) -> anyhow::Result<u8> {
    let mut app = App::new(cli.global, cli.keyholder);
    let app = &mut app;
    match &cli.command {
        Command::Init(args) => cmd_vault::init(app, args),
        Command::Put {
            namespace,
            name,
            source,
        } => cmd_vault::put(app, namespace, name, source),
        Command::Get {
            namespace,
            name,
            version,
            show_value,
        } => cmd_vault::get(app, namespace, name, *version, *show_value),
        Command::List { namespace } => cmd_vault::list(app, namespace),
        Command::Delete { namespace, name } => cmd_vault::delete(app, namespace, name),
        Command::History { namespace, name } => cmd_vault::history(app, namespace, name),
        Command::Rotate(args) => cmd_vault::rotate(app, args, false),
        Command::Reencrypt(args) => cmd_vault::rotate(app, args, true),
        Command::PendingRewrap => cmd_vault::pending_rewrap(app),
        Command::PurgeQuarantined => cmd_vault::purge_quarantined(app),
        Command::Status => cmd_vault::status(app),
        Command::Doctor { full } => cmd_vault::doctor(app, *full),
        Command::Audit(cmd) => cmd_vault::audit(app, cmd),
        Command::Recoverability => cmd_vault::recoverability(app),
        Command::Keyholder(cmd) => cmd_keys::keyholder(app, cmd),
        Command::RecoveryKey(cmd) => cmd_keys::recovery_key(app, cmd),
        Command::Kek(cmd) => cmd_keys::kek(app, cmd),
        Command::Identity(cmd) => cmd_members::identity(app, cmd),
        Command::Member(cmd) => cmd_members::member(app, cmd),
        Command::Scope(cmd) => cmd_members::scope(app, cmd),
        Command::Snapshot { file } => cmd_transfer::snapshot(app, file),
        Command::VerifySnapshot { file } => cmd_transfer::verify_snapshot(app, file),
        Command::Restore { file, args } => cmd_transfer::restore(app, file, args),
        Command::Export(args) => cmd_transfer::export(app, args),
        Command::Import {
            namespace,
            format,
            input,
            age_identity,
        } => cmd_transfer::import(app, namespace, *format, input, age_identity),
        Command::Run {
            namespace,
            allow_env_override,
            keep_kek_env,
            keep_env,
            command,
        } => cmd_transfer::run(
            app,
            namespace,
            &cmd_transfer::RunEnv {
                allow_override: allow_env_override,
                keep_kek_env: *keep_kek_env,
                keep: keep_env,
            },
            command,
        ),
        Command::Demo => demo::run(app),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_vault_on_the_command_line_is_warned_about() {
        const URL: &str = "postgres://u:pw@h/db"; // pragma: allowlist secret
        const LIBPQ: &str = "host=h password=pw"; // pragma: allowlist secret
        let warns = |args: &[&str]| {
            let matches = Cli::command().try_get_matches_from(args).unwrap();
            let cli = Cli::from_arg_matches(&matches).unwrap();
            vault_password_warning(&cli, &matches).is_some()
        };
        assert!(warns(&["strongroom", "--vault", URL, "status"]));
        assert!(warns(&["strongroom", "status", "--vault", LIBPQ]));
        assert!(!warns(&[
            "strongroom",
            "--vault",
            "postgres://u@h/db",
            "status"
        ]));
        assert!(!warns(&[
            "strongroom",
            "--vault",
            "/tmp/pw.sqlite",
            "status"
        ]));
        assert!(!warns(&["strongroom", "status"]));
    }

    /// What a subscriber with the `-v` filter writes for one event at each target.
    fn logged(verbose: u8) -> String {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(verbosity_filter(
                verbose,
            )))
            .with_writer(move || out.clone())
            .with_target(true)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "tokio_postgres::query", "tp-debug parameters");
            tracing::trace!(target: "postgres::client", "pg-trace");
            tracing::debug!(target: "r2d2", "r2d2-debug");
            tracing::info!(target: "tokio_postgres::connection", "tp-info");
            tracing::debug!(target: "strongroom::vault", "own-debug");
            tracing::trace!(target: "strongroom::vault", "own-trace");
        });
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn database_driver_logs_stay_at_info_at_every_verbosity() {
        for v in [2, 3, 4] {
            let out = logged(v);
            assert!(out.contains("own-debug"), "-v x{v}: {out}");
            assert!(out.contains("tp-info"), "-v x{v}: {out}");
            for quiet in ["tp-debug", "pg-trace", "r2d2-debug"] {
                assert!(!out.contains(quiet), "-v x{v}: {quiet} in {out}");
            }
        }
        assert!(logged(3).contains("own-trace"));
        assert!(!logged(1).contains("own-debug"));
        assert!(logged(0).is_empty());
    }

    #[test]
    fn rendering_skips_repeated_causes() {
        let inner = anyhow::anyhow!("wrong passphrase");
        let e = inner.context("unlock failed: wrong passphrase");
        assert_eq!(render(&e), "unlock failed: wrong passphrase");
        let e = anyhow::anyhow!("disk full").context("cannot write x");
        assert_eq!(render(&e), "cannot write x: disk full");
    }
}
