//! Release files → [`Release`]s, in file order.

#[allow(clippy::wildcard_imports)]
use super::*;
pub(super) fn releases(settings: &Settings, diags: &mut Diagnostics) -> Vec<Release> {
    let settings_file = settings.path.display().to_string();
    let base = settings
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let Ok(glob) = Glob::new(&settings.releases_glob) else {
        return Vec::new();
    };
    let files = match list_files(&base, &glob) {
        Ok(f) => f,
        Err(msg) => {
            diags.error(&settings_file, Pos::FILE, msg);
            return Vec::new();
        }
    };
    if files.is_empty() {
        diags.warning(
            &settings_file,
            Pos::FILE,
            format!("no release file matches `{}`", settings.releases_glob),
        );
    }
    let mut out: Vec<Release> = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for path in files {
        let file = path.display().to_string();
        let text = match read_text(&path) {
            Ok(t) => t,
            Err(msg) => {
                diags.error(&file, Pos::FILE, msg);
                continue;
            }
        };
        for raw in parse_many::<RawRelease>(&file, &text, diags) {
            let Some(r) = release(&file, raw, diags) else {
                continue;
            };
            if let Some(first) = seen.get(r.name.as_str()) {
                diags.error(
                    &file,
                    Pos::FILE,
                    format!(
                        "duplicate release name `{}` (first defined in {first})",
                        r.name
                    ),
                );
                continue;
            }
            seen.insert(r.name.as_str().to_owned(), file.clone());
            out.push(r);
        }
    }
    out
}

/// Files under `base` matching `glob`, sorted by path. Symlinked files are not followed.
pub(super) fn list_files(base: &Path, glob: &Glob) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let start: PathBuf = glob.literal_prefix().iter().collect();
    let root = base.join(&start);
    if !root.is_dir() {
        return Ok(out);
    }
    let mut stack = vec![(root, start.to_string_lossy().replace('\\', "/"))];
    while let Some((dir, rel)) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let child_rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let ft = entry
                .file_type()
                .map_err(|e| format!("cannot stat {}: {e}", entry.path().display()))?;
            if ft.is_dir() {
                if glob.could_match_below(&child_rel) {
                    stack.push((entry.path(), child_rel));
                }
            } else if ft.is_file() && glob.matches(&child_rel) {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

pub(super) fn release(file: &str, raw: RawRelease, diags: &mut Diagnostics) -> Option<Release> {
    check_header(file, &raw.api_version, &raw.kind, "Release", diags);
    let name = match ReleaseName::new(&raw.name.value) {
        Ok(n) => Some(n),
        Err(msg) => {
            diags.error(file, pos(&raw.name), msg);
            None
        }
    };
    let before = diags.len();
    let kubernetes = raw
        .kubernetes
        .as_ref()
        .and_then(|k| version(file, k, "kubernetes version", diags));
    let addons = versions(file, &raw.addons, "addon", diags);
    let controllers = versions(file, &raw.controllers, "controller", diags);
    let policies = versions(file, &raw.policies, "policy", diags);
    let mut positions = BTreeMap::new();
    if let Some(k) = &raw.kubernetes {
        positions.insert(Component::Kubernetes, pos(k));
    }
    let items = [
        (&raw.addons, Component::Addon as fn(String) -> Component),
        (&raw.controllers, Component::Controller),
        (&raw.policies, Component::Policy),
    ];
    for (map, make) in items {
        for (name, v) in map {
            positions.insert(make(name.clone()), pos(v));
        }
    }
    let requires_kubernetes = raw
        .requires
        .as_ref()
        .and_then(|r| r.kubernetes.as_ref())
        .and_then(|k| {
            VersionRange::parse(&k.value)
                .map_err(|msg| {
                    diags.error(file, pos(k), format!("invalid requires.kubernetes: {msg}"))
                })
                .ok()
        });
    if raw.kubernetes.is_none()
        && raw.addons.is_empty()
        && raw.controllers.is_empty()
        && raw.policies.is_empty()
    {
        diags.error(
            file,
            pos(&raw.name),
            format!(
                "release `{}` promotes nothing: set kubernetes, addons, controllers or policies",
                raw.name.value
            ),
        );
    }
    if diags.len() > before && diags.has_errors() {
        return None;
    }
    Some(Release {
        name: name?,
        description: raw.description,
        kubernetes,
        addons,
        controllers,
        policies,
        positions,
        requires_kubernetes,
        rollback: raw.rollback,
        source: file.to_owned(),
    })
}
