//! `rings.yaml` → [`RingSet`]: rings, selectors, windows, gates, freezes, coverage fields.

#[allow(clippy::wildcard_imports)]
use super::*;
pub(super) fn selector_key(
    file: &str,
    key: &str,
    p: Pos,
    diags: &mut Diagnostics,
) -> Option<FieldKey> {
    match FieldKey::parse(key) {
        Ok(k) => Some(k),
        Err(msg) => {
            let hint = match did_you_mean(key, FieldKey::NAMES) {
                Some(c) => format!("did you mean `{c}`? labels are written `labels.{key}`"),
                None => format!(
                    "fields are {}; labels are written `labels.{key}`",
                    FieldKey::NAMES.join(", ")
                ),
            };
            diags.error_hint(file, p, msg, hint);
            None
        }
    }
}

pub(super) fn selector(
    file: &str,
    raw: &BTreeMap<String, S<RawSelectorValue>>,
    diags: &mut Diagnostics,
) -> Selector {
    let mut terms = Vec::new();
    for (key, value) in raw {
        let p = pos(value);
        let Some(k) = selector_key(file, key, p, diags) else {
            continue;
        };
        let values = match &value.value {
            RawSelectorValue::One(v) => vec![v.clone()],
            RawSelectorValue::Many(vs) => vs.clone(),
        };
        if values.is_empty() {
            diags.error(file, p, format!("selector `{key}` lists no values"));
        }
        terms.push((k, values));
    }
    Selector { terms }
}

pub(super) fn ring_set(file: &str, raw: RawRingSet, diags: &mut Diagnostics) -> RingSet {
    check_header(file, &raw.api_version, &raw.kind, "RingSet", diags);

    let mut gates = BTreeMap::new();
    for (name, g) in &raw.gates {
        let p = pos(g);
        match GateName::new(name) {
            Ok(gn) => {
                if let Some(gate) = gate(file, p, gn.clone(), &g.value, diags) {
                    gates.insert(gn, gate);
                }
            }
            Err(msg) => diags.error(file, p, msg),
        }
    }

    let mut rings = Vec::new();
    let mut seen: HashMap<String, Pos> = HashMap::new();
    if raw.rings.is_empty() {
        diags.error(file, Pos::FILE, "no rings are defined");
    }
    for (i, r) in raw.rings.iter().enumerate() {
        let p = pos(&r.name);
        let name = match RingName::new(&r.name.value) {
            Ok(n) => n,
            Err(msg) => {
                diags.error(file, p, msg);
                continue;
            }
        };
        if let Some(first) = seen.get(name.as_str()) {
            diags.error(
                file,
                p,
                format!(
                    "duplicate ring name `{name}` (first defined at line {})",
                    first.line
                ),
            );
        } else {
            seen.insert(name.as_str().to_owned(), p);
        }
        let merge = match r.merge.as_ref().map(|m| (m.value.as_str(), pos(m))) {
            None | Some(("manual", _)) => MergeMode::Manual,
            Some(("auto", _)) => MergeMode::Auto,
            Some((other, mp)) => {
                diags.error(
                    file,
                    mp,
                    format!("merge `{other}` must be `auto` or `manual`"),
                );
                MergeMode::Manual
            }
        };
        let mut reviewers = Vec::new();
        for rv in &r.reviewers {
            let v = rv.value.trim();
            let ok = !v.is_empty()
                && v.split('/').count() <= 2
                && v.split('/').all(|s| {
                    !s.is_empty()
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                });
            if ok {
                reviewers.push(v.to_owned());
            } else {
                diags.error(
                    file,
                    pos(rv),
                    format!("reviewer `{v}` must be a user (`alice`) or a team (`org/team`)"),
                );
            }
        }
        let window = r.window.as_ref().and_then(|w| window(file, w, diags));
        let converge_timeout = duration_or(
            file,
            r.converge_timeout.as_ref(),
            DEFAULT_CONVERGE_TIMEOUT_SECS,
            "convergeTimeout",
            diags,
        );
        let soak = duration_or(file, r.soak.as_ref(), DEFAULT_SOAK_SECS, "soak", diags);
        if soak <= TimeDelta::zero()
            && let Some(raw_soak) = &r.soak
        {
            // A soak of nothing takes no sample: the ring would pass on gates never run.
            diags.error_hint(
                file,
                pos(raw_soak),
                format!("soak `{}` must be longer than 0s", raw_soak.value),
                "the ring's gates are sampled during the soak; use at least one reconcile interval, like `1m`",
            );
        }
        let gate_refs = |list: &[S<String>], diags: &mut Diagnostics| -> Vec<GateName> {
            let mut out = Vec::new();
            for g in list {
                match raw.gates.contains_key(&g.value) {
                    true => {
                        if let Ok(n) = GateName::new(&g.value) {
                            out.push(n);
                        }
                    }
                    false => {
                        let msg = format!("ring `{name}` uses unknown gate `{}`", g.value);
                        match did_you_mean(&g.value, raw.gates.keys().map(String::as_str)) {
                            Some(c) => {
                                diags.error_hint(file, pos(g), msg, format!("did you mean `{c}`?"))
                            }
                            None => diags.error_hint(
                                file,
                                pos(g),
                                msg,
                                "define it under `gates:` in this file".to_owned(),
                            ),
                        }
                    }
                }
            }
            out
        };
        let gates_used = gate_refs(&r.gates, diags);
        let preflight = gate_refs(&r.preflight, diags);
        let nodes = r
            .upgrade
            .as_ref()
            .and_then(|u| u.value.nodes.as_ref())
            .and_then(|n| node_convergence(file, n, diags))
            .unwrap_or_default();
        rings.push(Ring {
            name,
            position: i + 1,
            selector: selector(file, &r.selector, diags),
            merge,
            reviewers,
            window,
            converge_timeout,
            soak,
            gates: gates_used,
            preflight,
            nodes,
            pos: p,
        });
    }

    let mut freezes = Vec::new();
    for f in &raw.freezes {
        let from = instant(file, &f.from, diags);
        let to = instant(file, &f.to, diags);
        if let (Some(from), Some(to)) = (from, to) {
            if to <= from {
                diags.error(
                    file,
                    pos(&f.to),
                    format!(
                        "freeze ends ({}) before it starts ({})",
                        f.to.value, f.from.value
                    ),
                );
            } else {
                freezes.push(Freeze {
                    from,
                    to,
                    reason: f.reason.clone(),
                });
            }
        }
    }

    let mut coverage = Vec::new();
    for c in &raw.coverage {
        if let Some(k) = selector_key(file, &c.value, pos(c), diags) {
            coverage.push(k);
        }
    }
    let coverage_mode = match raw
        .coverage_mode
        .as_ref()
        .map(|m| (m.value.as_str(), pos(m)))
    {
        None | Some(("warn", _)) => CoverageMode::Warn,
        Some(("error", _)) => CoverageMode::Error,
        Some((other, p)) => {
            diags.error(
                file,
                p,
                format!("coverageMode `{other}` must be `warn` or `error`"),
            );
            CoverageMode::Warn
        }
    };

    let mut edits = Vec::new();
    for e in &raw.edits {
        if let Some(rule) = edit_rule(file, e, diags) {
            edits.push(rule);
        }
    }

    for ring in &rings {
        for g in &ring.gates {
            if let Some(gate) = gates.get(g)
                && matches!(&gate.check, GateCheck::Kube(k) if k.removed_apis.is_some())
            {
                diags.error_hint(
                    file,
                    ring.pos,
                    format!(
                        "ring `{}` uses gate `{g}` (kube.removedApis) during its soak; it checks a Kubernetes step before it is made",
                        ring.name
                    ),
                    "list it under the ring's `preflight:` instead of `gates:`",
                );
            }
        }
    }

    let observe = raw
        .observe
        .as_ref()
        .map(|o| observe(file, pos(o), &o.value, diags))
        .unwrap_or_default();

    RingSet {
        rings,
        gates,
        freezes,
        coverage,
        coverage_mode,
        edits,
        observe,
    }
}

/// A DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters): namespaces and
/// container names.
fn is_dns_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// A DNS-1123 subdomain (dot-separated labels, at most 253 characters): object names and API
/// groups.
fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(is_dns_label)
}

/// `v1` or `group/version`.
fn is_api_version(text: &str) -> bool {
    let is_version =
        |v: &str| v.starts_with('v') && v.len() > 1 && v.chars().all(|c| c.is_ascii_alphanumeric());
    match text.split_once('/') {
        None => is_version(text),
        Some((group, version)) => is_dns_subdomain(group) && is_version(version),
    }
}

/// `observe:` → [`Observe`].
pub(super) fn observe(file: &str, at: Pos, raw: &RawObserve, diags: &mut Diagnostics) -> Observe {
    let mut out = Observe {
        pos: at,
        addons: workloads(file, "addons", "addon", &raw.addons, diags),
        controllers: workloads(file, "controllers", "controller", &raw.controllers, diags),
        ..Observe::default()
    };
    for (bundle, r) in &raw.policies {
        let p = pos(r);
        if let Err(msg) = Component::check_item_name("policy", bundle) {
            diags.error(file, p, msg);
            continue;
        }
        let before = diags.errors().count();
        let r = &r.value;
        if !is_api_version(&r.api_version.value) {
            diags.error_hint(
                file,
                pos(&r.api_version),
                format!(
                    "observe.policies.{bundle}.apiVersion `{}` is not an API version",
                    r.api_version.value
                ),
                "write it as `group/version`, like `policies.ringmaster.dev/v1`",
            );
        }
        let kind = &r.kind.value;
        let kind_ok = kind.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && kind.chars().all(|c| c.is_ascii_alphanumeric());
        if !kind_ok {
            diags.error(
                file,
                pos(&r.kind),
                format!("observe.policies.{bundle}.kind `{kind}` is not a Kubernetes kind (like `PolicyBundle`)"),
            );
        }
        if !is_dns_subdomain(&r.name.value) {
            diags.error(
                file,
                pos(&r.name),
                format!(
                    "observe.policies.{bundle}.name `{}` is not a Kubernetes object name",
                    r.name.value
                ),
            );
        }
        if let Some(n) = &r.namespace
            && !is_dns_label(&n.value)
        {
            diags.error(
                file,
                pos(n),
                format!(
                    "observe.policies.{bundle}.namespace `{}` is not a namespace name",
                    n.value
                ),
            );
        }
        if !r.json_path.value.starts_with('.') || r.json_path.value.len() < 2 {
            diags.error(
                file,
                pos(&r.json_path),
                format!(
                    "observe.policies.{bundle}.jsonPath `{}` must start with `.` and name a field, like `.status.version`",
                    r.json_path.value
                ),
            );
        }
        if diags.errors().count() > before {
            continue;
        }
        out.policies.insert(
            bundle.clone(),
            ResourceRef {
                api_version: r.api_version.value.clone(),
                kind: kind.clone(),
                name: r.name.value.clone(),
                namespace: r.namespace.as_ref().map(|n| n.value.clone()),
                json_path: r.json_path.value.clone(),
            },
        );
    }
    out
}

/// `observe.addons` or `observe.controllers`: name → the workload running it.
fn workloads(
    file: &str,
    section: &str,
    kind_name: &str,
    raw: &BTreeMap<String, S<RawWorkloadRef>>,
    diags: &mut Diagnostics,
) -> BTreeMap<String, WorkloadRef> {
    let mut out = BTreeMap::new();
    for (addon, w) in raw {
        let p = pos(w);
        if let Err(msg) = Component::check_item_name(kind_name, addon) {
            diags.error(file, p, msg);
            continue;
        }
        let before = diags.errors().count();
        let w = &w.value;
        let kind = WorkloadKind::parse(&w.kind.value);
        if kind.is_none() {
            let msg = format!(
                "observe.{section}.{addon}.kind `{}` must be one of {}",
                w.kind.value,
                WorkloadKind::NAMES.join(", ")
            );
            match did_you_mean(&w.kind.value, WorkloadKind::NAMES) {
                Some(c) => {
                    diags.error_hint(file, pos(&w.kind), msg, format!("did you mean `{c}`?"))
                }
                None => diags.error(file, pos(&w.kind), msg),
            }
        }
        let namespace = w
            .namespace
            .as_ref()
            .map_or(DEFAULT_OBSERVE_NAMESPACE, |n| n.value.as_str());
        if let Some(n) = &w.namespace
            && !is_dns_label(&n.value)
        {
            diags.error(
                file,
                pos(n),
                format!(
                    "observe.{section}.{addon}.namespace `{}` is not a namespace name (lowercase letters, digits and `-`, at most 63)",
                    n.value
                ),
            );
        }
        let name = w.name.as_ref().map_or(addon.as_str(), |n| n.value.as_str());
        match &w.name {
            Some(n) if !is_dns_subdomain(&n.value) => diags.error(
                file,
                pos(n),
                format!(
                    "observe.{section}.{addon}.name `{}` is not a Kubernetes object name",
                    n.value
                ),
            ),
            None if !is_dns_subdomain(addon) => diags.error_hint(
                file,
                p,
                format!(
                    "observe.{section}.{addon} has no `name` and `{addon}` is not a Kubernetes object name"
                ),
                "set `name:` to the workload's name",
            ),
            _ => {}
        }
        if let Some(c) = &w.container
            && !is_dns_label(&c.value)
        {
            diags.error(
                file,
                pos(c),
                format!(
                    "observe.{section}.{addon}.container `{}` is not a container name",
                    c.value
                ),
            );
        }
        if diags.errors().count() > before {
            continue;
        }
        if let Some(kind) = kind {
            out.insert(
                addon.clone(),
                WorkloadRef {
                    kind,
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    container: w.container.as_ref().map(|c| c.value.clone()),
                },
            );
        }
    }
    out
}

/// Every add-on and policy bundle a release promotes needs an `observe` entry: without one,
/// convergence could never tell whether a cluster runs the new version. Reported against the
/// ring file (that is where the fix goes) at its `observe:` block, or the whole file when it
/// has none.
pub(super) fn observe_coverage(
    file: &str,
    ring_set: &RingSet,
    releases: &[Release],
    diags: &mut Diagnostics,
) {
    for release in releases {
        for addon in release.addons.keys() {
            if !ring_set.observe.addons.contains_key(addon) {
                diags.error_hint(
                    file,
                    ring_set.observe.pos,
                    format!(
                        "add-on `{addon}` (release {}, {}) has no `observe.addons.{addon}` entry; ringmaster could not tell whether clusters converged",
                        release.name, release.source
                    ),
                    format!(
                        "name the workload running it in this file, e.g. `observe: {{ addons: {{ {addon}: {{ kind: Deployment, namespace: kube-system, name: {addon} }} }} }}`"
                    ),
                );
            }
        }
        for controller in release.controllers.keys() {
            if !ring_set.observe.controllers.contains_key(controller) {
                diags.error_hint(
                    file,
                    ring_set.observe.pos,
                    format!(
                        "controller `{controller}` (release {}, {}) has no `observe.controllers.{controller}` entry; ringmaster could not tell whether clusters converged",
                        release.name, release.source
                    ),
                    format!(
                        "name the workload running it in this file, e.g. `observe: {{ controllers: {{ {controller}: {{ kind: Deployment, namespace: {controller}, name: {controller} }} }} }}`"
                    ),
                );
            }
        }
        for bundle in release.policies.keys() {
            if !ring_set.observe.policies.contains_key(bundle) {
                diags.error_hint(
                    file,
                    ring_set.observe.pos,
                    format!(
                        "policy bundle `{bundle}` (release {}, {}) has no `observe.policies.{bundle}` entry; ringmaster could not tell whether clusters converged",
                        release.name, release.source
                    ),
                    format!(
                        "name the object reporting its version in this file, e.g. `observe: {{ policies: {{ {bundle}: {{ apiVersion: policies.example.com/v1, kind: PolicyBundle, name: {bundle}, jsonPath: .status.version }} }} }}`"
                    ),
                );
            }
        }
    }
}

pub(super) fn instant(file: &str, v: &S<String>, diags: &mut Diagnostics) -> Option<DateTime<Utc>> {
    match DateTime::parse_from_rfc3339(v.value.trim()) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(e) => {
            diags.error(
                file,
                pos(v),
                format!(
                    "`{}` is not an RFC 3339 instant like 2026-12-19T00:00:00Z: {e}",
                    v.value
                ),
            );
            None
        }
    }
}

/// A cron that matches nothing after this instant never opens its window (the check does not
/// depend on today's date, so `validate` gives the same answer every day).
const NEVER_FROM: chrono::NaiveDateTime = match chrono::NaiveDate::from_ymd_opt(2000, 1, 1) {
    Some(d) => d.and_time(chrono::NaiveTime::MIN),
    None => chrono::NaiveDateTime::MIN,
};

pub(super) fn window(file: &str, w: &RawWindow, diags: &mut Diagnostics) -> Option<Window> {
    let schedule = match CronSchedule::parse(&w.cron.value) {
        Ok(s) if s.next_naive_after(NEVER_FROM).is_none() => {
            diags.error_hint(
                file,
                pos(&w.cron),
                format!(
                    "window cron `{}` never matches: the ring would wait forever",
                    w.cron.value
                ),
                "check the day of month against the month: February has no 30th, April no 31st",
            );
            None
        }
        Ok(s) => Some(s),
        Err(msg) => {
            diags.error(
                file,
                pos(&w.cron),
                format!("invalid cron `{}`: {msg}", w.cron.value),
            );
            None
        }
    };
    let duration = match parse_duration(&w.duration.value) {
        Ok(d) if d > TimeDelta::zero() => Some(d),
        Ok(_) => {
            diags.error(
                file,
                pos(&w.duration),
                "a window's duration must be longer than 0s",
            );
            None
        }
        Err(msg) => {
            diags.error(
                file,
                pos(&w.duration),
                format!("invalid window duration: {msg}"),
            );
            None
        }
    };
    let timezone = match &w.timezone {
        None => Some(Tz::UTC),
        Some(tz) => match tz.value.parse::<Tz>() {
            Ok(t) => Some(t),
            Err(_) => {
                let names = chrono_tz::TZ_VARIANTS.iter().map(|t| t.name());
                let msg = format!("unknown IANA timezone `{}`", tz.value);
                match did_you_mean(&tz.value, names) {
                    Some(c) => diags.error_hint(file, pos(tz), msg, format!("did you mean `{c}`?")),
                    None => diags.error_hint(
                        file,
                        pos(tz),
                        msg,
                        "use a name like Europe/Berlin or America/New_York",
                    ),
                }
                None
            }
        },
    };
    Some(Window {
        schedule: schedule?,
        duration: duration?,
        timezone: timezone?,
    })
}

pub(super) fn gate(
    file: &str,
    p: Pos,
    name: GateName,
    g: &RawGate,
    diags: &mut Diagnostics,
) -> Option<Gate> {
    let kinds = [
        g.kube.is_some(),
        g.prometheus.is_some(),
        g.http.is_some(),
        g.command.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if kinds != 1 {
        diags.error(
            file,
            p,
            format!("gate `{name}` must have exactly one of kube, prometheus, http or command"),
        );
        return None;
    }
    let mut ok = true;
    let mut bad = |msg: String| {
        diags.error(file, p, format!("gate `{name}`: {msg}"));
        ok = false;
    };
    let check = if let Some(k) = &g.kube {
        let n = [
            k.nodes_ready.is_some(),
            k.workloads_available.is_some(),
            k.pods_healthy.is_some(),
            k.resource.is_some(),
            k.removed_apis.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if n != 1 {
            bad("`kube` must have exactly one of nodesReady, workloadsAvailable, podsHealthy, resource or removedApis".to_owned());
        }
        if let Some(nr) = &k.nodes_ready
            && !(0.0..=1.0).contains(&nr.min_ratio)
        {
            bad(format!(
                "nodesReady.minRatio {} must be between 0 and 1",
                nr.min_ratio
            ));
        }
        if let Some(r) = &k.removed_apis {
            for entry in &r.ignore {
                let segments: Vec<&str> = entry.split('/').collect();
                let ok = segments
                    .iter()
                    .all(|s| !s.is_empty() && !s.contains(char::is_whitespace));
                if !ok {
                    bad(format!(
                        "removedApis.ignore entry `{entry}` must look like `group/version[/resource[/namespace]/name]`"
                    ));
                }
            }
        }
        if let Some(r) = &k.resource {
            let n = usize::from(r.equals.is_some())
                + usize::from(r.one_of.is_some())
                + usize::from(r.semver_range.is_some());
            if n != 1 {
                bad("`resource` needs exactly one of equals, in or semverRange".to_owned());
            }
            if !r.json_path.starts_with('.') {
                bad(format!("jsonPath `{}` must start with `.`", r.json_path));
            }
            if let Some(range) = &r.semver_range
                && let Err(msg) = VersionRange::parse(range)
            {
                bad(msg);
            }
        }
        GateCheck::Kube(k.clone())
    } else if let Some(pq) = &g.prometheus {
        if !(pq.url.starts_with("http://") || pq.url.starts_with("https://")) {
            bad(format!(
                "prometheus.url `{}` must be an http(s) URL",
                pq.url
            ));
        }
        if pq.query.trim().is_empty() {
            bad("prometheus.query is empty".to_owned());
        }
        match pq.baseline.as_deref() {
            None => {
                if pq.min.is_none() && pq.max.is_none() {
                    bad(
                        "prometheus needs `min` or `max` (or a baseline with maxIncrease/maxRatio)"
                            .to_owned(),
                    );
                }
            }
            Some("preUpgrade") => {
                if pq.max_increase.is_none() && pq.max_ratio.is_none() {
                    bad("a preUpgrade baseline needs maxIncrease or maxRatio".to_owned());
                }
            }
            Some(other) => bad(format!("baseline `{other}` must be `preUpgrade`")),
        }
        GateCheck::Prometheus(pq.clone())
    } else if let Some(h) = &g.http {
        if !(h.url.starts_with("http://") || h.url.starts_with("https://")) {
            bad(format!("http.url `{}` must be an http(s) URL", h.url));
        }
        if let Some(t) = &h.timeout
            && let Err(msg) = parse_duration(t)
        {
            bad(msg);
        }
        GateCheck::Http(h.clone())
    } else if let Some(c) = &g.command {
        if c.argv.first().is_none_or(|a| a.is_empty()) {
            bad("command.argv must name a program".to_owned());
        }
        if let Some(t) = &c.timeout
            && let Err(msg) = parse_duration(t)
        {
            bad(msg);
        }
        GateCheck::Command(c.clone())
    } else {
        return None;
    };
    let interval = match &g.interval {
        None => TimeDelta::seconds(DEFAULT_GATE_INTERVAL_SECS),
        Some(i) => match parse_duration(i) {
            Ok(d) if d >= TimeDelta::seconds(1) => d,
            Ok(_) => {
                bad("interval must be at least 1s".to_owned());
                TimeDelta::seconds(DEFAULT_GATE_INTERVAL_SECS)
            }
            Err(msg) => {
                bad(format!("interval: {msg}"));
                TimeDelta::seconds(DEFAULT_GATE_INTERVAL_SECS)
            }
        },
    };
    for (what, v) in [
        ("failureLimit", g.failure_limit),
        ("inconclusiveLimit", g.inconclusive_limit),
    ] {
        if v == Some(0) {
            bad(format!("{what} must be at least 1"));
        }
    }
    ok.then(|| Gate {
        name,
        check,
        interval,
        failure_limit: g.failure_limit.unwrap_or(DEFAULT_FAILURE_LIMIT),
        inconclusive_limit: g.inconclusive_limit.unwrap_or(DEFAULT_INCONCLUSIVE_LIMIT),
    })
}

pub(super) fn edit_rule(file: &str, e: &S<RawEdit>, diags: &mut Diagnostics) -> Option<EditRule> {
    let p = pos(e);
    let e = &e.value;
    let before = diags.errors().count();
    let target = match (&e.kubernetes, &e.addon, &e.controller, &e.policy) {
        (Some(_), None, None, None) => Component::Kubernetes,
        (None, Some(a), None, None) => Component::Addon(a.clone()),
        (None, None, Some(c), None) => Component::Controller(c.clone()),
        (None, None, None, Some(pl)) => Component::Policy(pl.clone()),
        _ => {
            diags.error(
                file,
                p,
                "an edit rule names exactly one of `kubernetes`, `addon`, `controller` or `policy`",
            );
            return None;
        }
    };
    let (file_tpl, yaml_path, regex) = match &e.kubernetes {
        Some(t) => {
            if e.file.is_some() || e.yaml_path.is_some() || e.regex.is_some() {
                diags.error(file, p, "a `kubernetes:` edit rule keeps `file`, `yamlPath` and `regex` inside `kubernetes:`");
            }
            (Some(&t.file), t.yaml_path.as_ref(), t.regex.as_ref())
        }
        None => (e.file.as_ref(), e.yaml_path.as_ref(), e.regex.as_ref()),
    };
    let template = match file_tpl.map(|t| PathTemplate::parse(t)) {
        None => {
            diags.error(file, p, "an edit rule needs `file`");
            None
        }
        Some(Err(msg)) => {
            diags.error(file, p, format!("edit file {msg}"));
            None
        }
        Some(Ok(t)) => Some(t),
    };
    let locator = match (yaml_path, regex) {
        (Some(y), None) => match crate::yamlpath::YamlPath::parse(y) {
            Ok(path) if !path.segments().is_empty() => Some(EditLocator::YamlPath(path)),
            Ok(_) => {
                diags.error(
                    file,
                    p,
                    "an edit rule's yamlPath must name a value, not the whole document",
                );
                None
            }
            Err(msg) => {
                diags.error(file, p, format!("invalid yamlPath `{y}`: {msg}"));
                None
            }
        },
        (None, Some(r)) => match regex::Regex::new(r) {
            Ok(re) if re.capture_names().flatten().any(|n| n == "version") => {
                Some(EditLocator::Regex(r.clone()))
            }
            Ok(_) => {
                diags.error(
                    file,
                    p,
                    "an edit regex needs a named group `version`, like `cluster_version\\s*=\\s*\"(?P<version>[^\"]+)\"`",
                );
                None
            }
            Err(err) => {
                diags.error(file, p, format!("invalid edit regex: {err}"));
                None
            }
        },
        _ => {
            diags.error(
                file,
                p,
                "an edit rule sets exactly one of `yamlPath` or `regex`",
            );
            None
        }
    };
    let when = if e.when.is_empty() {
        None
    } else {
        Some(selector(file, &e.when, diags))
    };
    if diags.errors().count() > before {
        return None;
    }
    Some(EditRule {
        when,
        target,
        file: template?,
        locator: locator?,
        pos: p,
    })
}
