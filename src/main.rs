//! `straja`: the edge gateway daemon and its administration commands.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use straja_gateway::config::Config;

/// Straja edge gateway: cameras and consultations to browsers over WebRTC.
#[derive(Parser)]
#[command(name = "straja", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (without --config: the embedded demo configuration).
    Run {
        /// Configuration file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file: exit 0, or 2 with every problem listed.
    CheckConfig {
        /// Configuration file (TOML).
        file: PathBuf,
    },
    /// TLS material for tests and trials.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Write a dev CA plus server and client certificates into DIR (never overwrites).
    Init {
        /// Output directory.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(config) => {
                println!(
                    "{}: valid ({} camera{})",
                    file.display(),
                    config.cameras.len(),
                    if config.cameras.len() == 1 { "" } else { "s" }
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Certs {
            command: CertsCommand::Init { dir },
        } => match straja_gateway::tls::init_dev_certificates(&dir) {
            Ok(files) => {
                for file in files {
                    println!("wrote {}", file.display());
                }
                println!("This CA is for tests and trials only; never use it in production.");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("straja certs init: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config } => {
            init_logging();
            match run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("straja: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRAJA_LOG")
        // rtc_dtls::config warns on every DTLS-client session that it uses "localhost" as the
        // server name, which is meaningless for DTLS-SRTP (peers are checked by fingerprint).
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rtc_dtls::config=error"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn run(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = match &config_path {
        Some(path) => Config::load(path)?,
        None => {
            tracing::info!("no --config given: running the embedded demo configuration");
            Config::demo()
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("straja")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let running = straja_gateway::server::start(config).await?;
        println!(
            "Straja is serving: https://{} (metrics: http://{}/metrics)",
            running.https_addr, running.metrics_addr
        );
        shutdown_signal().await;
        // A second signal forces the exit while the graceful stop runs.
        tokio::spawn(async {
            shutdown_signal().await;
            eprintln!("straja: second signal, exiting now");
            std::process::exit(130);
        });
        running.shutdown().await;
        Ok::<(), anyhow::Error>(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
