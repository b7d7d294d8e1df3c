//! `straja`: the edge gateway daemon and its administration commands.

use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use straja_gateway::audit::{Action, AuditEvent, AuditLog, Outcome};
use straja_gateway::auth::{Role, TokenAuthority};
use straja_gateway::config::Config;

mod logging;
mod recordings_cli;
mod signals;
mod user_admin;

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
    /// Access tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Local users who sign in on the login page.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Recorded video: list segments, export a time range to one MP4.
    Recordings {
        #[command(subcommand)]
        command: recordings_cli::RecordingsCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user (asks for the password, or reads it from stdin with --password-stdin).
    Add {
        /// Sign-in name: a-z, 0-9, '.', '_', '@', '-'.
        name: String,
        /// ops, security or clinician.
        #[arg(long)]
        role: Role,
        /// A camera the user may view (repeat for several); required for the security role.
        #[arg(long = "camera")]
        cameras: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Configuration file (without: the embedded demo configuration).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Set a user's password (their open sign-ins end).
    Passwd {
        /// The user.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Configuration file (without: the embedded demo configuration).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Remove a user (their open sign-ins end).
    Remove {
        /// The user.
        name: String,
        /// Configuration file (without: the embedded demo configuration).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// List the users and their roles.
    List {
        /// Configuration file (without: the embedded demo configuration).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the audit log's hash chain, through every rotated file and then the live one: exit
    /// 0, or 1 naming the file, line and record of the first altered, removed or reordered record.
    Verify {
        /// Configuration file (without: the embedded demo configuration).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a signed access token (signed with the key in the config's state_dir).
    Issue {
        /// ops, security, clinician or patient.
        #[arg(long)]
        role: Role,
        /// A camera the token grants (repeat for several); required for the security role.
        #[arg(long = "camera")]
        cameras: Vec<String>,
        /// Lifetime: e.g. 90s, 15m, 8h, 1d (at most 24h).
        #[arg(long, default_value = "1h", value_parser = parse_lifetime)]
        ttl: Duration,
        /// Who the token is for (shown in logs and, later, the audit log).
        #[arg(long, default_value = "operator")]
        subject: String,
        /// Configuration file (without: the embedded demo configuration).
        #[arg(long)]
        config: Option<PathBuf>,
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
        Command::Token {
            command:
                TokenCommand::Issue {
                    role,
                    cameras,
                    ttl,
                    subject,
                    config,
                },
        } => match issue_token(role, &cameras, ttl, &subject, config.as_deref()) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("straja token issue: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Audit {
            command: AuditCommand::Verify { config },
        } => {
            let config = match load_or_demo(config.as_deref()) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("straja audit verify: {e:#}");
                    return ExitCode::from(2);
                }
            };
            let path = AuditLog::path_in(&config.state_dir);
            let dir = path.parent().unwrap_or(&path);
            match straja_gateway::audit::verify(&path) {
                Ok(chain) => {
                    println!(
                        "{}: {} records in {} file{}, chain intact",
                        dir.display(),
                        chain.records,
                        chain.files,
                        if chain.files == 1 { "" } else { "s" }
                    );
                    ExitCode::SUCCESS
                }
                Err(broken) => {
                    eprintln!("audit log chain broken at {broken}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::User { command } => match user_admin::run(command) {
            Ok(message) => {
                println!("{message}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("straja user: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Recordings { command } => match recordings_cli::run(command, load_or_demo) {
            Ok(message) => {
                println!("{message}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("straja recordings: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Run { config } => {
            let log_level = logging::init();
            // GStreamer's own messages (GST_DEBUG) in the same log, at their own priority.
            straja_pipelines::route_debug_log_to_tracing();
            match run(config, &log_level) {
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

fn issue_token(
    role: Role,
    cameras: &[String],
    ttl: Duration,
    subject: &str,
    config: Option<&std::path::Path>,
) -> anyhow::Result<String> {
    let config = load_or_demo(config)?;
    check_grant(&config, role, cameras)?;
    let authority = TokenAuthority::load_or_create(&config.state_dir)?;
    let audit = AuditLog::open(&config.state_dir, config.audit.rotate_bytes)?;
    let token = authority.issue(subject, role, cameras, ttl)?;
    let claims = authority.verify(&token)?;
    let issuer = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
    // The token is printed only once its issue is on record.
    audit.append(AuditEvent {
        actor: format!("cli:{issuer}"),
        role: None,
        action: Action::TokenIssue,
        resource: format!("token:{}", claims.jti),
        outcome: Outcome::Allowed,
        source: None,
        reason: Some(format!(
            "for {} as {}{}, {} s",
            claims.sub,
            role.as_str(),
            if cameras.is_empty() {
                String::new()
            } else {
                format!(" on {}", cameras.join(","))
            },
            ttl.as_secs()
        )),
    })?;
    Ok(token)
}

/// Checks that every camera exists and that the role and the cameras go together.
fn check_grant(config: &Config, role: Role, cameras: &[String]) -> anyhow::Result<()> {
    for camera in cameras {
        if !config.cameras.iter().any(|c| &c.id == camera) {
            anyhow::bail!("no camera '{camera}' in the configuration");
        }
    }
    if role == Role::Security && cameras.is_empty() {
        anyhow::bail!("the security role needs at least one --camera");
    }
    if role != Role::Security && !cameras.is_empty() {
        anyhow::bail!("--camera applies to the security role only");
    }
    Ok(())
}

fn load_or_demo(config: Option<&std::path::Path>) -> anyhow::Result<Config> {
    Ok(match config {
        Some(path) => Config::load(path)?,
        None => Config::demo(),
    })
}

/// Parses a lifetime such as `90s`, `15m`, `8h` or `1d`.
fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("'{text}' has no unit; use s, m, h or d (e.g. 8h)"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' does not start with a number"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit '{unit}'; use s, m, h or d")),
    };
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("'{text}' is too long"))
}

fn run(config_path: Option<PathBuf>, log_level: &logging::LogLevel) -> anyhow::Result<()> {
    let config = match &config_path {
        Some(path) => Config::load(path)?,
        None => {
            tracing::info!("no --config given: running the embedded demo configuration");
            Config::demo()
        }
    };
    log_level.apply(&config.log.level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("straja")
        .build()
        .context("cannot start the async runtime")?;
    let mut service = straja_gateway::service_notify::ServiceNotify::from_env();
    runtime.block_on(async {
        // Watched before start-up: a SIGTERM while starting stops the daemon once it has started.
        let mut signals = signals::Signals::watch();
        let running = straja_gateway::server::start(config).await?;
        println!(
            "Straja is serving: https://{} (metrics: http://{}/metrics)",
            running.https_addr, running.metrics_addr
        );
        // Listeners bound, every camera's pipeline started (cameras that are down keep trying).
        service.ready(&running);
        serve_until_stop(
            &running,
            &mut signals,
            &service,
            config_path.as_deref(),
            log_level,
        )
        .await;
        service.stopping();
        // A second signal forces the exit while the graceful stop runs.
        tokio::spawn(async move {
            signals.stop().await;
            eprintln!("straja: second signal, exiting now");
            std::process::exit(130);
        });
        running.shutdown().await;
        Ok::<(), anyhow::Error>(())
    })
}

/// Serves until SIGTERM or SIGINT, reloading the configuration file (or, without one, the
/// embedded demo configuration and the TLS material) on each SIGHUP.
async fn serve_until_stop(
    running: &straja_gateway::server::RunningGateway,
    signals: &mut signals::Signals,
    service: &straja_gateway::service_notify::ServiceNotify,
    config_path: Option<&std::path::Path>,
    log_level: &logging::LogLevel,
) {
    while signals.next().await == signals::Request::Reload {
        match config_path {
            Some(path) => tracing::info!("SIGHUP received: reloading {}", path.display()),
            None => tracing::info!("SIGHUP received: reloading (the embedded demo configuration)"),
        }
        service.reloading();
        let config = match config_path {
            Some(path) => Config::load(path),
            None => Ok(Config::demo()),
        };
        match running.reload(config).await {
            Ok(report) => {
                if let Some(level) = &report.plan.log_level {
                    log_level.apply(level);
                }
                service.reloaded(&format!(
                    "Configuration reloaded in {} ms",
                    report.took.as_millis()
                ));
            }
            Err(_) => service.reloaded(
                "Configuration reload rejected: the running configuration stays (see the log)",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_parse_with_units_and_reject_nonsense() {
        assert_eq!(parse_lifetime("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_lifetime("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_lifetime("8h"), Ok(Duration::from_secs(28_800)));
        assert_eq!(parse_lifetime("1d"), Ok(Duration::from_secs(86_400)));
        for bad in ["", "8", "h", "8x", "-1h", "99999999999999999999d"] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }
}
