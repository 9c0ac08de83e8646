//! The AWS emulator: moto's server, pinned, from the project's virtualenv (`make setup`
//! creates it), bound to 127.0.0.1 only, on a free port. It runs through
//! `infra/local/moto_server.py`, which takes the quadratic cost off moto's SQS with deep queues
//! (a 10,000-recipient broadcast) without changing what it answers; `MOTO_SERVER_BIN` runs
//! another moto_server binary as it is.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The moto version the project is tested against (also pinned in `infra/requirements.txt`).
pub const MOTO_VERSION: &str = "5.2.5";

#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    #[error(
        "moto_server not found at {0}: run `make setup` (it creates .venv with moto[server]=={MOTO_VERSION}), \
         or point MOTO_SERVER_BIN at a moto_server binary"
    )]
    NotInstalled(PathBuf),
    #[error("could not start moto_server: {0}")]
    Spawn(std::io::Error),
    #[error("moto_server did not answer on {0} within 30 s (log: {1})")]
    NotReady(String, PathBuf),
}

/// A running moto server. It is stopped when dropped, and (on Linux) also when the process
/// that started it dies, so an interrupted test run leaves nothing behind.
#[derive(Debug)]
pub struct Moto {
    pub endpoint: String,
    pid: u32,
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap_or_else(|_| ".".into())
}

/// The command that starts moto_server (its arguments follow), or the binary that is missing.
fn moto_command() -> Result<Command, MotoError> {
    if let Some(binary) = std::env::var_os("MOTO_SERVER_BIN").map(PathBuf::from) {
        return if binary.exists() { Ok(Command::new(binary)) } else { Err(MotoError::NotInstalled(binary)) };
    }
    let root = workspace_root();
    let (python, launcher) = (root.join(".venv/bin/python"), root.join("infra/local/moto_server.py"));
    if python.exists() && launcher.exists() && root.join(".venv/bin/moto_server").exists() {
        let mut command = Command::new(python);
        command.arg(launcher);
        return Ok(command);
    }
    Err(MotoError::NotInstalled(root.join(".venv/bin/moto_server")))
}

impl Moto {
    /// Starts a fresh moto server and waits until it answers.
    pub async fn start() -> Result<Self, MotoError> {
        let mut command = moto_command()?;
        let port = free_port();
        let log_dir = workspace_root().join(".local");
        let _ = std::fs::create_dir_all(&log_dir);
        let log_path = log_dir.join(format!("moto-{port}.log"));
        let log = std::fs::File::create(&log_path).map_err(MotoError::Spawn)?;
        let stderr = log.try_clone().map_err(MotoError::Spawn)?;

        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]).stdin(Stdio::null()).stdout(log).stderr(stderr);
        die_with_parent(&mut command);

        // The child is spawned and reaped by a thread that lives exactly as long as the child:
        // Linux's parent-death signal follows the spawning *thread*, and test threads are short.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || match command.spawn() {
            Ok(mut child) => {
                let _ = tx.send(Ok(child.id()));
                let _ = child.wait();
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        });
        let pid = rx.recv().map_err(|e| MotoError::Spawn(std::io::Error::other(e)))?.map_err(MotoError::Spawn)?;
        let moto = Self { endpoint: format!("http://127.0.0.1:{port}"), pid };
        moto.wait_ready(&log_path).await?;
        Ok(moto)
    }

    /// The emulator's process id (to watch what it costs, e.g. its CPU time in `/proc`).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    async fn wait_ready(&self, log_path: &std::path::Path) -> Result<(), MotoError> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if client.get(format!("{}/moto-api/", self.endpoint)).send().await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(MotoError::NotReady(self.endpoint.clone(), log_path.to_owned()))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        terminate(self.pid);
    }
}

/// Asks the OS for a port that is free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(45_000)
}

#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

#[allow(unsafe_code)]
fn terminate(pid: u32) {
    // SAFETY: sending a signal to a process id we spawned; no memory is shared.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}
