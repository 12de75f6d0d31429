//! `ringmaster plan`.

use std::io::Write as _;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use crate::cli::{Cli, Output};
use crate::output::{plan_table, print_diagnostics};

pub fn run(
    cli: &Cli,
    release: Option<&str>,
    at: Option<DateTime<Utc>>,
) -> anyhow::Result<ExitCode> {
    let loaded = match rings::load(&cli.config) {
        Ok(l) => l,
        Err(diags) => {
            print_diagnostics(&diags);
            eprintln!(
                "{} is invalid; run `ringmaster validate` for the full report",
                cli.config.display()
            );
            return Ok(ExitCode::from(1));
        }
    };
    let config = &loaded.config;
    if let Some(name) = release
        && config.release(name).is_none()
    {
        let known: Vec<&str> = config.releases.iter().map(|r| r.name.as_str()).collect();
        eprintln!(
            "error: no release named `{name}` (releases: {})",
            known.join(", ")
        );
        return Ok(ExitCode::from(1));
    }
    let at = at.unwrap_or_else(Utc::now);
    let global = global_freeze(cli, at);
    if let Some(f) = &global {
        eprintln!(
            "note: a global freeze holds every ring until {} ({}); the forecast starts after it",
            f.to.to_rfc3339(),
            f.reason
        );
    }
    let plan = policies::plan::plan_with(config, at, release, global.as_ref());
    // Warnings (coverage gaps, empty rings) go to stderr so that JSON on stdout stays clean.
    print_diagnostics(&loaded.warnings);
    match cli.output {
        Output::Json => {
            // Streamed: the JSON of a 100,000-cluster plan is hundreds of megabytes.
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            serde_json::to_writer_pretty(&mut out, &plan)?;
            writeln!(out)?;
            out.flush()?;
        }
        Output::Table => print!("{}", plan_table(&plan, config)),
    }
    Ok(ExitCode::SUCCESS)
}

/// `plan --release R --ring NAME --diff`: the unified diff of the ring's next step, built in
/// memory against the base branch head (nothing is written to any repository).
pub fn diff(cli: &Cli, release: &str, ring: &str) -> anyhow::Result<ExitCode> {
    let Some(source) = crate::repo::open_base(&cli.config)? else {
        return Ok(ExitCode::from(1));
    };
    let loaded = match source.load(&cli.config) {
        Ok(l) => l,
        Err(diags) => {
            print_diagnostics(&diags);
            eprintln!(
                "{} is invalid; run `ringmaster validate` for the full report",
                cli.config.display()
            );
            return Ok(ExitCode::from(1));
        }
    };
    print_diagnostics(&loaded.warnings);
    let config = &loaded.config;
    let Some(rel) = config.release(release) else {
        let known: Vec<&str> = config.releases.iter().map(|r| r.name.as_str()).collect();
        eprintln!(
            "error: no release named `{release}` (releases: {})",
            known.join(", ")
        );
        return Ok(ExitCode::from(1));
    };
    let Some(ring_index) = config
        .ring_set
        .rings
        .iter()
        .position(|r| r.name.as_str() == ring)
    else {
        let known: Vec<&str> = config
            .ring_set
            .rings
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        eprintln!(
            "error: no ring named `{ring}` (rings: {})",
            known.join(", ")
        );
        return Ok(ExitCode::from(1));
    };
    source.in_memory()?;
    let request = orchestrator::gitops::StepRequest {
        config,
        release: rel,
        ring_index,
        step: 1,
        time: Utc::now(),
    };
    let author = &config.settings.author;
    match orchestrator::gitops::prepare_in(
        source.repo(),
        source.base(),
        &request,
        (&author.0, &author.1),
    ) {
        Ok(Some(step)) => {
            print!(
                "{}",
                orchestrator::gitops::diff_in(source.repo(), step.base, step.commit)?
            );
            for (id, why) in &step.left_out {
                eprintln!("note: {id} is left out: {why}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(None) => {
            eprintln!("ring `{ring}` has nothing to change for release `{release}`");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: release `{release}`, ring `{ring}`: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `plan --preflight [--release R]`: for each release and ring, the preflight of the ring's
/// next step (built-in checks and the ring's `preflight:` gates) against the live clusters
/// through the kubeconfig. Exit 1 when any check does not hold.
pub fn preflight(cli: &Cli, release: Option<&str>) -> anyhow::Result<ExitCode> {
    let Some(source) = crate::repo::open_base(&cli.config)? else {
        return Ok(ExitCode::from(1));
    };
    let loaded = match source.load(&cli.config) {
        Ok(l) => l,
        Err(d) => {
            print_diagnostics(&d);
            return Ok(ExitCode::from(1));
        }
    };
    let config = &loaded.config;
    let probe = policies::probe::Probe::new(policies::probe::ProbeSettings {
        kubeconfig: config.settings.kubeconfig.clone(),
        ..Default::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut results = Vec::new();
    let mut all_ok = true;
    rt.block_on(async {
        for r in config
            .releases
            .iter()
            .filter(|r| release.is_none_or(|n| r.name.as_str() == n))
        {
            for (i, ring) in config.ring_set.rings.iter().enumerate() {
                let gates: Vec<&rings::model::Gate> = ring
                    .preflight
                    .iter()
                    .filter_map(|g| config.ring_set.gates.get(g))
                    .collect();
                let step = match orchestrator::gitops::changes::next_ring_step(config, r, i) {
                    Ok(s) => s,
                    Err(e) => {
                        all_ok = false;
                        results.push(serde_json::json!({"release": r.name.as_str(), "ring": ring.name.as_str(),
                            "cluster": null, "ok": false, "findings": [e.to_string()]}));
                        continue;
                    }
                };
                for cs in &step.clusters {
                    let target = policies::probe::Targets::from_step(&cs.changes);
                    let p = probe.preflight(cs.cluster, &target, &gates).await;
                    all_ok &= p.ok();
                    results.push(serde_json::json!({
                        "release": r.name.as_str(), "ring": ring.name.as_str(),
                        "cluster": cs.cluster.id.as_str(), "ok": p.ok(),
                        "findings": p.findings.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    }));
                }
            }
        }
    });
    match cli.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&results)?),
        Output::Table => {
            for r in &results {
                let findings: Vec<&str> = r["findings"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f.as_str())
                    .collect();
                println!(
                    "{:<24} {:<14} {:<28} {}",
                    r["release"].as_str().unwrap_or("?"),
                    r["ring"].as_str().unwrap_or("?"),
                    r["cluster"].as_str().unwrap_or("-"),
                    if findings.is_empty() {
                        "ok".to_owned()
                    } else {
                        findings.join("; ")
                    }
                );
            }
        }
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The global freeze (`ringmaster freeze`) active at `at`, read from the store, or through the
/// running daemon's API when it holds the store. `None` when there is none or it cannot be
/// read (a plan without a store is still a plan).
fn global_freeze(cli: &Cli, at: DateTime<Utc>) -> Option<rings::model::Freeze> {
    let settings = rings::load::load_settings(&cli.config).ok()?;
    let (until, reason, since) = match state::Store::open(&settings.store_path) {
        Ok(store) => {
            let f = store.global_freeze().ok()??;
            (f.until, f.reason, f.since)
        }
        Err(state::StoreError::Locked { .. }) => {
            let status = super::daemon::read_through_api(&settings, "/api/v1/status").ok()?;
            let f = &status["freeze"];
            let parse = |v: &serde_json::Value| {
                DateTime::parse_from_rfc3339(v.as_str()?)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            };
            (
                parse(&f["until"])?,
                f["reason"].as_str().unwrap_or("").to_owned(),
                parse(&f["since"]).unwrap_or(at),
            )
        }
        Err(_) => return None,
    };
    (until > at).then(|| rings::model::Freeze {
        from: since.min(at),
        to: until,
        reason: format!("global freeze: {reason}"),
    })
}
