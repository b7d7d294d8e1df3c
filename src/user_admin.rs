//! `straja user add|passwd|remove|list`: manages the local users file. Passwords are asked for
//! twice on a terminal without echo, or read from the first line of stdin (`--password-stdin`,
//! for scripts); they never appear on the command line, where `ps` would show them. Every change
//! is in the audit log.

use std::io::{BufRead, IsTerminal};

use anyhow::Context;
use straja_gateway::audit::{Action, AuditEvent, AuditLog, Outcome};
use straja_gateway::auth::password;
use straja_gateway::auth::user_directory::{User, UsersError, UsersFile, validate_name};

use crate::{UserCommand, check_grant, load_or_demo};

/// Runs a `user` subcommand; returns what to print.
pub fn run(command: UserCommand) -> anyhow::Result<String> {
    match command {
        UserCommand::Add {
            name,
            role,
            cameras,
            password_stdin,
            config,
        } => {
            let config = load_or_demo(config.as_deref())?;
            validate_name(&name)?;
            check_grant(&config, role, &cameras)?;
            if role == straja_gateway::auth::Role::Patient {
                anyhow::bail!("patients join by invitation, not as local users");
            }
            let file = users_file(&config);
            if file.read()?.find(&name).is_some() {
                anyhow::bail!("user '{name}' exists; use `straja user passwd {name}` to reset");
            }
            let hash = new_password_hash(password_stdin)?;
            let audit = AuditLog::open(&config.state_dir, config.audit.rotate_bytes)?;
            file.update(|users| {
                if users.find(&name).is_some() {
                    return Err(UsersError::Request(format!("user '{name}' exists")));
                }
                users.users.push(User {
                    name: name.clone(),
                    role,
                    cameras: cameras.clone(),
                    password: hash,
                });
                Ok(())
            })?;
            record(&audit, Action::UserAdd, &name, Some(role.as_str()))?;
            Ok(format!(
                "added {name} ({}) to {}",
                role.as_str(),
                file.path().display()
            ))
        }
        UserCommand::Passwd {
            name,
            password_stdin,
            config,
        } => {
            let config = load_or_demo(config.as_deref())?;
            let file = users_file(&config);
            if file.read()?.find(&name).is_none() {
                anyhow::bail!("no user '{name}'");
            }
            let hash = new_password_hash(password_stdin)?;
            let audit = AuditLog::open(&config.state_dir, config.audit.rotate_bytes)?;
            file.update(|users| {
                let user = users
                    .users
                    .iter_mut()
                    .find(|u| u.name == name)
                    .ok_or_else(|| UsersError::Request(format!("no user '{name}'")))?;
                user.password = hash;
                Ok(())
            })?;
            record(&audit, Action::UserPasswd, &name, None)?;
            Ok(format!(
                "password of {name} changed; their open sign-ins have ended"
            ))
        }
        UserCommand::Remove { name, config } => {
            let config = load_or_demo(config.as_deref())?;
            let file = users_file(&config);
            let audit = AuditLog::open(&config.state_dir, config.audit.rotate_bytes)?;
            file.update(|users| {
                let before = users.users.len();
                users.users.retain(|u| u.name != name);
                if users.users.len() == before {
                    return Err(UsersError::Request(format!("no user '{name}'")));
                }
                Ok(())
            })?;
            record(&audit, Action::UserRemove, &name, None)?;
            Ok(format!("removed {name}; their open sign-ins have ended"))
        }
        UserCommand::List { config } => {
            let config = load_or_demo(config.as_deref())?;
            let users = users_file(&config).read()?;
            if users.users.is_empty() {
                return Ok("no local users".into());
            }
            Ok(users
                .users
                .iter()
                .map(|u| {
                    let cameras = if u.cameras.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", u.cameras.join(", "))
                    };
                    format!("{}\t{}{cameras}", u.name, u.role.as_str())
                })
                .collect::<Vec<_>>()
                .join("\n"))
        }
    }
}

fn users_file(config: &straja_gateway::config::Config) -> UsersFile {
    UsersFile::new(config.auth.users_file_in(&config.state_dir))
}

/// Asks for a new password (twice, without echo) or reads it from stdin, and hashes it.
fn new_password_hash(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin || !std::io::stdin().is_terminal() {
        read_password_line().context("cannot read the password from stdin")?
    } else {
        let first = rpassword::prompt_password("New password: ")?;
        let second = rpassword::prompt_password("Repeat it: ")?;
        if first != second {
            anyhow::bail!("the two passwords differ");
        }
        first
    };
    Ok(password::hash(&password)?)
}

/// Reads the first line of stdin (without its line ending), at most a password's length and a
/// little more, so that a longer one is refused rather than cut.
fn read_password_line() -> std::io::Result<String> {
    use std::io::Read;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .take(password::MAX_PASSWORD_BYTES as u64 + 2)
        .read_line(&mut line)?;
    let kept = line.trim_end_matches(['\r', '\n']).len();
    line.truncate(kept);
    Ok(line)
}

fn record(
    audit: &AuditLog,
    action: Action,
    name: &str,
    detail: Option<&str>,
) -> anyhow::Result<()> {
    let operator = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
    audit.append(AuditEvent {
        actor: format!("cli:{operator}"),
        role: None,
        action,
        resource: format!("user:{name}"),
        outcome: Outcome::Allowed,
        source: None,
        reason: detail.map(|d| format!("role {d}")),
    })?;
    Ok(())
}
