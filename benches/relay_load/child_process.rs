//! The benchmark's helper processes (viewer swarm, plain receivers, UDP forwarder) are this same
//! binary started again with a `--child-…` argument, pinned to a core with `taskset`. They talk
//! to the orchestrator in lines: the child prints `ready <json>` once set up, the orchestrator
//! writes `measure` (reset counters: the window starts) and then `stop`, and the child prints
//! `report <json>` and exits. Every wait is bounded; a child whose orchestrator vanishes (stdin
//! closed) stops by itself.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// A child as the orchestrator sees it.
pub struct ChildProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl ChildProcess {
    /// Starts this binary with `args`, pinned to `cpus` when given.
    pub fn spawn(args: &[String], cpus: Option<&str>) -> ChildProcess {
        let exe = std::env::current_exe().expect("own executable");
        let mut command = match cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("child process");
        let stdout = child.stdout.take().expect("child stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ChildProcess {
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the child's line starting with `word`, returning the rest.
    pub fn expect(&self, word: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(word) {
                        return rest.trim().to_owned();
                    }
                    eprintln!("child: {line}");
                }
                Err(_) => panic!("no '{word}' from the child within {timeout:?}"),
            }
        }
    }

    /// Sends a command line.
    pub fn say(&mut self, command: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "{command}");
            let _ = stdin.flush();
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.stdin.take();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a child hears from the orchestrator.
#[derive(Clone, Default)]
pub struct Commands {
    /// Set on `measure`.
    pub measuring: Arc<AtomicBool>,
    /// Set on `stop`, or when stdin closes.
    pub stop: Arc<AtomicBool>,
}

impl Commands {
    /// Listens on stdin in a thread.
    pub fn listen() -> Commands {
        let commands = Commands::default();
        let listener = commands.clone();
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                match line.as_deref().map(str::trim) {
                    Ok("measure") => listener.measuring.store(true, Ordering::SeqCst),
                    Ok("stop") | Err(_) => break,
                    Ok(_) => {}
                }
            }
            listener.stop.store(true, Ordering::SeqCst);
        });
        commands
    }
}

/// Prints `word <json>` for the orchestrator.
pub fn tell(word: &str, value: &impl serde::Serialize) {
    let json = serde_json::to_string(value).expect("serialisable");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{word} {json}");
    let _ = out.flush();
}
