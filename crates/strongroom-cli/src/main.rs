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

use clap::Parser;

use crate::app::App;
use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    quiet_broken_pipe();
    let cli = Cli::parse();
    init_tracing(cli.global.verbose);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", render(&e));
            ExitCode::from(1)
        }
    }
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

/// Logs to stderr: `RUST_LOG` when set, else by `-v` count (warnings only by default).
fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(match verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        })
    });
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
        Command::Status => cmd_vault::status(app),
        Command::Doctor { full } => cmd_vault::doctor(app, *full),
        Command::Audit(cmd) => cmd_vault::audit(app, cmd),
        Command::Recoverability => cmd_vault::recoverability(app),
        Command::Keyholder(cmd) => cmd_keys::keyholder(app, cmd),
        Command::RecoveryKey(cmd) => cmd_keys::recovery_key(app, cmd),
        Command::Kek(cmd) => cmd_keys::kek(app, cmd),
        Command::Identity(cmd) => cmd_members::identity(app, cmd),
        Command::Member(cmd) => cmd_members::member(app, cmd),
        Command::Snapshot { file } => cmd_transfer::snapshot(app, file),
        Command::VerifySnapshot { file } => cmd_transfer::verify_snapshot(app, file),
        Command::Restore { file, args } => cmd_transfer::restore(app, file, args),
        Command::Export(args) => cmd_transfer::export(app, args),
        Command::Import {
            namespace,
            format,
            input,
        } => cmd_transfer::import(app, namespace, *format, input),
        Command::Run {
            namespace,
            allow_env_override,
            keep_kek_env,
            command,
        } => cmd_transfer::run(
            app,
            namespace,
            &cmd_transfer::RunEnv {
                allow_override: allow_env_override,
                keep_kek_env: *keep_kek_env,
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
    fn rendering_skips_repeated_causes() {
        let inner = anyhow::anyhow!("wrong passphrase");
        let e = inner.context("unlock failed: wrong passphrase");
        assert_eq!(render(&e), "unlock failed: wrong passphrase");
        let e = anyhow::anyhow!("disk full").context("cannot write x");
        assert_eq!(render(&e), "cannot write x: disk full");
    }
}
