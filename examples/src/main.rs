//! `ringmaster-example`: materializes an example fleet into a directory.
//!
//! ```text
//! ringmaster-example init DIR [--example fleet|small-team]
//! ```
//!
//! Prints the path of the created `ringmaster.yaml` on stdout (so
//! `ringmaster --config "$(ringmaster-example init /tmp/fleet)" plan` works) and one line on
//! stderr saying what was created. Exit codes: 0 ok, 1 failure, 2 usage error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: ringmaster-example init DIR [--example fleet|small-team]";

#[derive(Debug)]
struct Init {
    dir: PathBuf,
    example: &'static str,
}

enum Command {
    Help,
    Init(Init),
}

fn parse(args: &[String]) -> Result<Command, String> {
    let mut args = args.iter();
    match args.next().map(String::as_str) {
        Some("init") => {}
        Some("-h" | "--help" | "help") => return Ok(Command::Help),
        Some(other) => return Err(format!("unknown command {other:?}")),
        None => return Err("missing command".to_owned()),
    }
    let mut dir = None;
    let mut example = "fleet";
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--example" => Some(
                args.next()
                    .ok_or_else(|| "--example needs a value".to_owned())?
                    .as_str(),
            ),
            other => other.strip_prefix("--example="),
        };
        if let Some(value) = value {
            example = match value {
                "fleet" => "fleet",
                "small-team" => "small-team",
                other => {
                    return Err(format!(
                        "unknown example {other:?} (expected fleet or small-team)"
                    ));
                }
            };
        } else if arg.starts_with('-') && arg.len() > 1 {
            return Err(format!("unknown option {arg:?}"));
        } else if dir.is_some() {
            return Err(format!("unexpected argument {arg:?}"));
        } else {
            dir = Some(PathBuf::from(arg));
        }
    }
    let dir = dir.ok_or_else(|| "missing DIR".to_owned())?;
    Ok(Command::Init(Init { dir, example }))
}

/// A directory that holds an earlier materialization: `init` may replace it.
/// Both markers are required, so a real configuration directory that merely has a
/// `ringmaster.yaml` (with a remote GitOps URL) is never deleted.
fn is_previous_materialization(dir: &Path) -> bool {
    dir.join("ringmaster.yaml").is_file() && dir.join("gitops").join(".git").is_dir()
}

fn init(cmd: &Init) -> Result<PathBuf, String> {
    let source = match cmd.example {
        "small-team" => examples::small_team_dir(),
        _ => examples::fleet_dir(),
    };
    if is_previous_materialization(&cmd.dir) {
        std::fs::remove_dir_all(&cmd.dir)
            .map_err(|e| format!("removing previous example {}: {e}", cmd.dir.display()))?;
    }
    let config = examples::materialize(&source, &cmd.dir).map_err(|e| e.to_string())?;
    Ok(std::path::absolute(&config).unwrap_or(config))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match parse(&args) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Init(cmd)) => cmd,
        Err(msg) => {
            eprintln!("ringmaster-example: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match init(&cmd) {
        Ok(config) => {
            let dir = config.parent().unwrap_or(&cmd.dir);
            eprintln!(
                "created example {:?} in {} (GitOps repository {} on branch {})",
                cmd.example,
                dir.display(),
                dir.join("gitops").display(),
                examples::BRANCH,
            );
            println!("{}", config.display());
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("ringmaster-example: {msg}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_init() {
        let Command::Init(i) = parse(&args(&["init", "x"])).unwrap() else {
            panic!("expected init")
        };
        assert_eq!((i.dir, i.example), (PathBuf::from("x"), "fleet"));
        for a in [
            &["init", "x", "--example", "small-team"][..],
            &["init", "--example", "small-team", "x"],
            &["init", "--example=small-team", "x"],
        ] {
            let Command::Init(i) = parse(&args(a)).unwrap() else {
                panic!("expected init")
            };
            assert_eq!((i.dir, i.example), (PathBuf::from("x"), "small-team"));
        }
    }

    #[test]
    fn rejects_bad_usage() {
        for a in [
            &[][..],
            &["init"],
            &["init", "x", "y"],
            &["init", "x", "--example"],
            &["init", "x", "--example", "huge"],
            &["init", "x", "--force"],
            &["frobnicate", "x"],
        ] {
            assert!(parse(&args(a)).is_err(), "{a:?}");
        }
    }
}
