//! `command:` gates: run a program (no shell); exit 0 passes.

use std::process::Stdio;
use std::time::Duration;

use rings::model::{Cluster, CommandGate};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::{Observation, field_value, substitute, tail, timeout_or};

/// Timeout when the gate sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of the combined stdout and stderr is kept in `observed`.
pub const OUTPUT_TAIL_BYTES: usize = 2048;
/// The environment variable carrying the cluster id.
pub const CLUSTER_ID_ENV: &str = "RINGMASTER_CLUSTER_ID";

/// Render placeholders in every argument (no shell is involved, so any value is kept as is).
pub fn render_argv(argv: &[String], cluster: &Cluster) -> Result<Vec<String>, String> {
    argv.iter()
        .map(|arg| substitute(arg, |key| field_value(key, cluster)))
        .collect()
}

async fn read_all(pipe: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(mut pipe) = pipe {
        // Keep what was read even if the pipe breaks.
        let _ = pipe.read_to_end(&mut buf).await;
    }
    buf
}

/// Run the gate's argv with `RINGMASTER_CLUSTER_ID` set. Exit 0 passes, any other exit fails;
/// a program that cannot start, or one still running at the timeout (default 60 s; it is
/// killed, with its process group on Unix) is inconclusive. `observed` ends with the last
/// 2 KiB of stdout then stderr.
pub async fn evaluate(gate: &CommandGate, cluster: &Cluster) -> Observation {
    let (argv, timeout) = match (
        render_argv(&gate.argv, cluster),
        timeout_or(gate.timeout.as_deref(), DEFAULT_TIMEOUT),
    ) {
        (Ok(a), Ok(t)) => (a, t),
        (Err(e), _) | (_, Err(e)) => return Observation::inconclusive(e),
    };
    let Some((program, args)) = argv.split_first() else {
        return Observation::inconclusive("empty argv");
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .env(CLUSTER_ID_ENV, cluster.id.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    command.process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Observation::inconclusive(format!("could not start `{program}`: {e}")),
    };
    let pid = child.id();
    let stdout = tokio::spawn(read_all(child.stdout.take()));
    let stderr = tokio::spawn(read_all(child.stderr.take()));
    let status = tokio::time::timeout(timeout, child.wait()).await;
    if !matches!(status, Ok(Ok(_))) {
        kill_group(pid).await;
        let _ = child.kill().await;
    }
    // Grandchildren outside the group could hold the pipes open: do not wait for them forever.
    let grace = Duration::from_secs(2);
    let mut output = tokio::time::timeout(grace, stdout)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    output.extend(
        tokio::time::timeout(grace, stderr)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default(),
    );
    let output = tail(&String::from_utf8_lossy(&output), OUTPUT_TAIL_BYTES);
    let with_output = |head: String| {
        if output.is_empty() {
            head
        } else {
            format!("{head}: {output}")
        }
    };
    match status {
        Err(_) => {
            Observation::inconclusive(with_output(format!("timeout after {timeout:?}, killed")))
        }
        Ok(Err(e)) => Observation::inconclusive(format!("waiting for `{program}`: {e}")),
        Ok(Ok(status)) => match status.code() {
            Some(0) => Observation::pass(Some(0.0), with_output("exit 0".to_owned())),
            Some(code) => {
                Observation::fail(Some(f64::from(code)), with_output(format!("exit {code}")))
            }
            None => Observation::fail(None, with_output(format!("{status}"))),
        },
    }
}

/// Kill the child's process group (it was made a group leader), so `sh -c 'sleep 600'` does not
/// leave the sleep behind.
#[cfg(unix)]
async fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }
}

#[cfg(not(unix))]
async fn kill_group(_pid: Option<u32>) {}
