#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;

use super::*;

fn path(text: &str) -> YamlPath {
    YamlPath::parse(text).unwrap()
}

/// Edit, assert the exact output, and check the invariants every edit must satisfy.
#[track_caller]
fn assert_edit(input: &str, at: &str, value: &str, expected: &str) -> Edit {
    let p = path(at);
    let edit = set_scalar(input, &p, value).unwrap();
    assert_eq!(edit.text, expected, "output of setting `{at}` to `{value}`");
    assert!(edit.changed);
    assert_eq!(&input[..edit.range.start], &expected[..edit.range.start]);
    let tail = input.len() - edit.range.end;
    assert_eq!(&input[edit.range.end..], &expected[expected.len() - tail..]);
    assert_eq!(get_scalar(&edit.text, &p).unwrap(), value);
    assert_eq!(get_scalar(input, &p).unwrap(), edit.old);
    edit
}

#[track_caller]
fn refused(input: &str, at: &str, value: &str) -> EditError {
    set_scalar(input, &path(at), value).unwrap_err()
}

#[track_caller]
fn unsupported_reason(input: &str, at: &str) -> String {
    match refused(input, at, "9.9.9") {
        EditError::Unsupported { path, reason } => {
            assert_eq!(path, YamlPath::parse(at).unwrap().to_string());
            reason
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Corpus of awkward files, each with its exact expected output.
// ---------------------------------------------------------------------------------------------

#[test]
fn plain_scalar() {
    let edit = assert_edit(
        "kubernetesVersion: 1.30\nregion: eu-west-1\n",
        "kubernetesVersion",
        "1.31",
        "kubernetesVersion: 1.31\nregion: eu-west-1\n",
    );
    assert_eq!(edit.old, "1.30");
    assert_eq!(edit.range, 19..23);
}

#[test]
fn single_quoted_scalar() {
    assert_edit(
        "version: '1.2.3' # keep\n",
        "version",
        "1.2.4",
        "version: '1.2.4' # keep\n",
    );
    // `''` is an escaped quote, both when reading the old token and writing the new one.
    let edit = assert_edit(
        "note: 'it''s 1.0'\nnext: x\n",
        "note",
        "Bob's 2.0",
        "note: 'Bob''s 2.0'\nnext: x\n",
    );
    assert_eq!(edit.old, "it's 1.0");
    assert_eq!(edit.range, 6..17);
}

#[test]
fn double_quoted_scalar() {
    assert_edit(
        "version: \"1.2.3\"\n",
        "version",
        "1.3.0",
        "version: \"1.3.0\"\n",
    );
    // Backslashes and quotes in the new value are escaped.
    assert_edit(
        "label: \"a\"\n",
        "label",
        "say \"hi\" \\o/",
        "label: \"say \\\"hi\\\" \\\\o/\"\n",
    );
}

#[test]
fn trailing_comment_after_value() {
    assert_edit(
        "addons:\n  coredns: \"1.11.3\" # pinned\n  kube-proxy: v1.30.0 # pinned too\n",
        "addons.coredns",
        "1.11.4",
        "addons:\n  coredns: \"1.11.4\" # pinned\n  kube-proxy: v1.30.0 # pinned too\n",
    );
    assert_edit(
        "addons:\n  coredns: \"1.11.3\" # pinned\n  kube-proxy: v1.30.0 # pinned too\n",
        "addons.kube-proxy",
        "v1.31.2",
        "addons:\n  coredns: \"1.11.3\" # pinned\n  kube-proxy: v1.31.2 # pinned too\n",
    );
    assert_edit(
        "a: 1.0\t# tab before the comment\n",
        "a",
        "2.0",
        "a: 2.0\t# tab before the comment\n",
    );
}

#[test]
fn flow_mapping() {
    let input = "addons: {coredns: \"1.11.3\", vpc-cni: '1.19.0', kube-proxy: v1.30.0}\n";
    assert_edit(
        input,
        "addons.vpc-cni",
        "1.19.2",
        "addons: {coredns: \"1.11.3\", vpc-cni: '1.19.2', kube-proxy: v1.30.0}\n",
    );
    assert_edit(
        input,
        "addons.coredns",
        "1.11.4",
        "addons: {coredns: \"1.11.4\", vpc-cni: '1.19.0', kube-proxy: v1.30.0}\n",
    );
    assert_edit(
        input,
        "addons.kube-proxy",
        "v1.31.0",
        "addons: {coredns: \"1.11.3\", vpc-cni: '1.19.0', kube-proxy: v1.31.0}\n",
    );
}

#[test]
fn flow_sequence_and_nested_flow_in_block() {
    let input = "cluster:\n  name: prod\n  addons: {dns: [v1.0, \"v2.0\", {pin: '3.0'}]} # flow\n  after: 1\n";
    assert_edit(
        input,
        "cluster.addons.dns[1]",
        "v2.1",
        "cluster:\n  name: prod\n  addons: {dns: [v1.0, \"v2.1\", {pin: '3.0'}]} # flow\n  after: 1\n",
    );
    assert_edit(
        input,
        "cluster.addons.dns[2].pin",
        "3.1",
        "cluster:\n  name: prod\n  addons: {dns: [v1.0, \"v2.0\", {pin: '3.1'}]} # flow\n  after: 1\n",
    );
    assert_edit(
        "versions: [1.28, 1.29,1.30]\n",
        "versions[2]",
        "1.31",
        "versions: [1.28, 1.29,1.31]\n",
    );
}

#[test]
fn crlf_file_stays_crlf() {
    assert_edit(
        "spec:\r\n  version: 1.2.3\r\n  other: \"x\"\r\n",
        "spec.version",
        "1.2.4",
        "spec:\r\n  version: 1.2.4\r\n  other: \"x\"\r\n",
    );
    assert_edit(
        "spec:\r\n  version: '1.2.3' # c\r\n",
        "spec.version",
        "1.2.4",
        "spec:\r\n  version: '1.2.4' # c\r\n",
    );
}

#[test]
fn byte_order_mark_is_kept() {
    let edit = assert_edit(
        "\u{feff}# header\nversion: 1.0.0\n",
        "version",
        "1.0.1",
        "\u{feff}# header\nversion: 1.0.1\n",
    );
    assert_eq!(edit.range, 21..26);
}

#[test]
fn multi_document_target_in_second_document() {
    assert_edit(
        "---\nkind: Namespace\nmetadata:\n  name: flux\n...\n---\nkind: HelmRelease\nspec:\n  chart:\n    spec:\n      version: 1.2.3\n---\nkind: ConfigMap\n",
        "spec.chart.spec.version",
        "1.2.4",
        "---\nkind: Namespace\nmetadata:\n  name: flux\n...\n---\nkind: HelmRelease\nspec:\n  chart:\n    spec:\n      version: 1.2.4\n---\nkind: ConfigMap\n",
    );
}

#[test]
fn helm_release() {
    let input = r#"apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: cilium
  namespace: kube-system
spec:
  interval: 10m
  chart:
    spec:
      chart: cilium
      version: "1.16.1" # renovate: datasource=helm
      sourceRef:
        kind: HelmRepository
        name: cilium
  values:
    image:
      tag: v1.16.1
"#;
    let expected = input.replace("\"1.16.1\"", "\"1.16.2\"");
    assert_edit(input, ".spec.chart.spec.version", "1.16.2", &expected);
    let expected = input.replace("tag: v1.16.1", "tag: v1.16.2");
    assert_edit(input, "spec.values.image.tag", "v1.16.2", &expected);
}

#[test]
fn flux_kustomization() {
    let input = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: infra\n  namespace: flux-system\nspec:\n  interval: 1h\n  path: ./clusters/prod\n  prune: true\n  postBuild:\n    substitute:\n      cluster_version: \"1.30\"\n      region: eu-west-1\n";
    let expected = input.replace("\"1.30\"", "\"1.31\"");
    assert_edit(
        input,
        "spec.postBuild.substitute.cluster_version",
        "1.31",
        &expected,
    );
}

#[test]
fn list_index_path() {
    let input = "spec:\n  values:\n  - name: a\n    tag: 1.0.0\n  - name: b\n    tag: 2.0.0\n";
    assert_edit(
        input,
        "spec.values[1].tag",
        "2.0.1",
        "spec:\n  values:\n  - name: a\n    tag: 1.0.0\n  - name: b\n    tag: 2.0.1\n",
    );
    assert_edit(
        "- 1.0\n- - 2.0\n  - 3.0\n",
        "[1][1]",
        "3.1",
        "- 1.0\n- - 2.0\n  - 3.1\n",
    );
}

#[test]
fn bracketed_key_with_dots_and_slashes() {
    let input =
        "metadata:\n  annotations:\n    example.com/version: 1.2.3\n    \"quoted.key\": '4.5'\n";
    assert_edit(
        input,
        "metadata.annotations[\"example.com/version\"]",
        "1.2.4",
        "metadata:\n  annotations:\n    example.com/version: 1.2.4\n    \"quoted.key\": '4.5'\n",
    );
    assert_edit(
        input,
        "metadata.annotations['quoted.key']",
        "4.6",
        "metadata:\n  annotations:\n    example.com/version: 1.2.3\n    \"quoted.key\": '4.6'\n",
    );
}

#[test]
fn four_space_indentation() {
    assert_edit(
        "spec:\n    chart:\n        spec:\n            version: 0.9.0\n    other: 1\n",
        "spec.chart.spec.version",
        "0.10.0",
        "spec:\n    chart:\n        spec:\n            version: 0.10.0\n    other: 1\n",
    );
}

#[test]
fn unchanged_value_returns_input() {
    let input = "a: 1.2.3 # same\nb: '4'\n";
    let edit = set_scalar(input, &path("a"), "1.2.3").unwrap();
    assert_eq!(
        edit,
        Edit {
            old: "1.2.3".to_owned(),
            text: input.to_owned(),
            range: 3..8,
            changed: false,
        }
    );
    let edit = set_scalar(input, &path("b"), "4").unwrap();
    assert!(!edit.changed);
    assert_eq!(edit.range, 19..22);
}

#[test]
fn extra_spaces_before_value() {
    assert_edit(
        "key:     1.0.0   # aligned\nother:   \"2\"\n",
        "key",
        "1.0.1",
        "key:     1.0.1   # aligned\nother:   \"2\"\n",
    );
}

#[test]
fn hash_inside_quoted_value() {
    let input = "a: \"1.2#x\" # c\nb: '1.2 #x'\t# c\nc: 1.2#y # plain with hash\n";
    let edit = assert_edit(
        input,
        "a",
        "1.3",
        "a: \"1.3\" # c\nb: '1.2 #x'\t# c\nc: 1.2#y # plain with hash\n",
    );
    assert_eq!(edit.old, "1.2#x");
    let edit = assert_edit(
        input,
        "b",
        "1.3",
        "a: \"1.2#x\" # c\nb: '1.3'\t# c\nc: 1.2#y # plain with hash\n",
    );
    assert_eq!(edit.old, "1.2 #x");
    // A `#` without a space before it is part of a plain scalar.
    let edit = assert_edit(
        input,
        "c",
        "1.3",
        "a: \"1.2#x\" # c\nb: '1.2 #x'\t# c\nc: 1.3 # plain with hash\n",
    );
    assert_eq!(edit.old, "1.2#y");
}

#[test]
fn document_markers_and_root_scalars() {
    assert_edit(
        "%YAML 1.2\n---\nversion: 1.0 # c\n...\n",
        "version",
        "1.1",
        "%YAML 1.2\n---\nversion: 1.1 # c\n...\n",
    );
    assert_edit("--- 1.0\n", ".", "1.1", "--- 1.1\n");
    assert_edit("'1.0'", ".", "1.1", "'1.1'");
}

#[test]
fn keys_in_any_style_and_explicit_keys() {
    assert_edit(
        "'a': {\"b\": 1.0}\n? c\n: 2.0\n",
        "a.b",
        "1.1",
        "'a': {\"b\": 1.1}\n? c\n: 2.0\n",
    );
    assert_edit(
        "'a': {\"b\": 1.0}\n? c\n: 2.0\n",
        "c",
        "2.1",
        "'a': {\"b\": 1.0}\n? c\n: 2.1\n",
    );
}

#[test]
fn unrelated_anchors_do_not_block_edits() {
    // An anchored node that no alias references, or an alias elsewhere, is fine.
    assert_edit(
        "defaults: &d {x: 1}\nuse: *d\nspec: &s\n  version: 1.0\n",
        "spec.version",
        "1.1",
        "defaults: &d {x: 1}\nuse: *d\nspec: &s\n  version: 1.1\n",
    );
}

#[test]
fn utf8_around_the_target() {
    assert_edit(
        "# café ☕\nname: 'ünïcödé'\nversion: \"1.0\" # ✓\n",
        "version",
        "1.1",
        "# café ☕\nname: 'ünïcödé'\nversion: \"1.1\" # ✓\n",
    );
    assert_edit("name: 'ünïcödé'\n", "name", "ascii", "name: 'ascii'\n");
}

#[test]
fn get_scalar_reads_values() {
    let input = "a: &v 1.0\nb: *v\nc: !!str 1.30\nd: |\n  text\ne: \"tab\\there\"\nf: one\n  two\n";
    assert_eq!(get_scalar(input, &path("a")).unwrap(), "1.0");
    assert_eq!(get_scalar(input, &path("b")).unwrap(), "1.0");
    assert_eq!(get_scalar(input, &path("c")).unwrap(), "1.30");
    assert_eq!(get_scalar(input, &path("d")).unwrap(), "text\n");
    assert_eq!(get_scalar(input, &path("e")).unwrap(), "tab\there");
    assert_eq!(get_scalar(input, &path("f")).unwrap(), "one two");
    assert_eq!(
        get_scalar("a: &m {x: 1}\nb: *m\n", &path("b")).unwrap_err(),
        EditError::NotAScalar {
            path: "b".to_owned(),
            kind: "mapping",
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Refusals.
// ---------------------------------------------------------------------------------------------

#[test]
fn refuses_alias() {
    let reason = unsupported_reason("base: &v 1.0\nother: *v\n", "other");
    assert!(reason.contains("alias `*v`"), "{reason}");
}

#[test]
fn refuses_anchor() {
    let reason = unsupported_reason("base: &v 1.0\nother: *v\n", "base");
    assert!(reason.contains("anchor `&v`"), "{reason}");
    // Even when nothing references it (yet): other files or later edits may.
    let reason = unsupported_reason("base: &v 1.0\n", "base");
    assert!(reason.contains("anchor `&v`"), "{reason}");
}

#[test]
fn refuses_inside_aliased_node() {
    let reason = unsupported_reason("base: &b\n  version: 1.0\ncopy: *b\n", "base.version");
    assert!(reason.contains("`&b`"), "{reason}");
}

#[test]
fn refuses_paths_through_aliases() {
    let reason = unsupported_reason("base: &b\n  version: 1.0\ncopy: *b\n", "copy.version");
    assert!(
        reason.contains("paths are not followed through aliases"),
        "{reason}"
    );
}

#[test]
fn refuses_tag() {
    let reason = unsupported_reason("version: !!str 1.30\n", "version");
    assert!(reason.contains("`!!str`"), "{reason}");
    let reason = unsupported_reason("version: !custom '1.30'\n", "version");
    assert!(reason.contains("`!custom`"), "{reason}");
}

#[test]
fn refuses_block_scalars() {
    let reason = unsupported_reason("notes: |\n  1.0\n", "notes");
    assert!(reason.contains("block scalar"), "{reason}");
    let reason = unsupported_reason("notes: >-\n  1.0\n", "notes");
    assert!(reason.contains("block scalar"), "{reason}");
}

#[test]
fn refuses_multi_line_scalars() {
    for input in [
        "v: 1.0\n  continued\n",
        "v: '1.0\n  continued'\n",
        "v: \"1.0\n  continued\"\n",
    ] {
        let reason = unsupported_reason(input, "v");
        assert!(reason.contains("several lines"), "{input:?}: {reason}");
    }
}

#[test]
fn refuses_escaped_double_quoted() {
    let reason = unsupported_reason("v: \"1.0\\t\"\n", "v");
    assert!(reason.contains("escape"), "{reason}");
    let reason = unsupported_reason("v: \"\\u0031.0\"\n", "v");
    assert!(reason.contains("escape"), "{reason}");
}

#[test]
fn refuses_empty_plain_scalar() {
    let reason = unsupported_reason("v:\nw: 1\n", "v");
    assert!(reason.contains("empty"), "{reason}");
    let reason = unsupported_reason("v: # nothing\nw: 1\n", "v");
    assert!(reason.contains("empty"), "{reason}");
    assert_eq!(get_scalar("v:\nw: 1\n", &path("v")).unwrap(), "");
    // A written `~` is a token like any other.
    assert_edit("v: ~\n", "v", "1.0", "v: 1.0\n");
}

#[test]
fn refuses_duplicate_keys() {
    let reason = unsupported_reason("v: 1.0\nv: 2.0\n", "v");
    assert!(reason.contains("more than once"), "{reason}");
    let reason = unsupported_reason("spec: {a: 1}\nspec:\n  v: 2.0\n", "spec.v");
    assert!(reason.contains("`spec`"), "{reason}");
    // Duplicates elsewhere in the file do not matter.
    assert_edit("x: 1\nx: 2\nv: 1.0\n", "v", "1.1", "x: 1\nx: 2\nv: 1.1\n");
}

#[test]
fn refuses_missing_path() {
    assert_eq!(
        refused("a:\n  b: 1\n", "a.c", "2"),
        EditError::NotFound {
            path: "a.c".to_owned(),
        }
    );
    assert_eq!(
        refused("a:\n  b: 1\n", "a.b.c", "2"),
        EditError::NotFound {
            path: "a.b.c".to_owned(),
        }
    );
    assert_eq!(
        refused("a: [1]\n", "a[1]", "2"),
        EditError::NotFound {
            path: "a[1]".to_owned(),
        }
    );
    assert_eq!(
        refused("a: [1]\n", "a.b", "2"),
        EditError::NotFound {
            path: "a.b".to_owned(),
        }
    );
    assert_eq!(
        refused("", "a", "2"),
        EditError::NotFound {
            path: "a".to_owned(),
        }
    );
}

#[test]
fn refuses_ambiguous_documents() {
    let error = refused(
        "version: 1.0\n---\nversion: 2.0\n---\nother: 1\n",
        "version",
        "3.0",
    );
    assert_eq!(
        error,
        EditError::Ambiguous {
            path: "version".to_owned(),
            documents: 2,
        }
    );
    assert_eq!(
        error.to_string(),
        "`version` is found in 2 documents of this file; refusing to guess which one to edit"
    );
}

#[test]
fn refuses_collections() {
    assert_eq!(
        refused("spec:\n  chart: {a: 1}\n", "spec.chart", "1"),
        EditError::NotAScalar {
            path: "spec.chart".to_owned(),
            kind: "mapping",
        }
    );
    assert_eq!(
        refused("spec:\n  list:\n  - 1\n", "spec.list", "1"),
        EditError::NotAScalar {
            path: "spec.list".to_owned(),
            kind: "sequence",
        }
    );
}

#[test]
fn refuses_values_that_are_not_plain_safe() {
    for value in [
        "1.0 beta", "yes", "No", "on", "OFF", "y", "null", "~", "", "-1", ".5", "1.0#x", "a:b",
        "[1]", "v1,2", "é",
    ] {
        assert_eq!(
            refused("v: 1.0 # plain\n", "v", value),
            EditError::NotPlainSafe {
                value: value.to_owned(),
            },
            "{value:?}"
        );
    }
    // The same values are fine in quoted scalars, which keep their quotes.
    assert_edit("v: '1.0'\n", "v", "1.0 beta", "v: '1.0 beta'\n");
    assert_edit("v: \"1.0\"\n", "v", "yes", "v: \"yes\"\n");
}

#[test]
fn refuses_line_breaks_in_quoted_values() {
    let reason = match refused("v: '1.0'\n", "v", "a\nb") {
        EditError::Unsupported { reason, .. } => reason,
        other => panic!("{other:?}"),
    };
    assert!(reason.contains("line break"), "{reason}");
    assert!(matches!(
        refused("v: \"1.0\"\n", "v", "a\rb"),
        EditError::Unsupported { .. }
    ));
}

#[test]
fn refuses_invalid_yaml_with_position() {
    let error = refused("a: 1\nb: 2\nkey: \"unterminated\n", "a", "2");
    match &error {
        EditError::Parse {
            line,
            column,
            message,
        } => {
            assert_eq!((*line, *column), (3, 6));
            assert!(!message.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(
        error
            .to_string()
            .starts_with("not valid YAML at line 3, column 6: "),
        "{error}"
    );
    assert!(matches!(
        get_scalar("a: [1, 2\n", &path("a")),
        Err(EditError::Parse { line: 1, .. })
    ));
    // A comment needs whitespace before its `#`.
    assert!(matches!(
        get_scalar("a: \"1.2\"# c\n", &path("a")),
        Err(EditError::Parse {
            line: 1,
            column: 9,
            ..
        })
    ));
}

#[test]
fn error_messages() {
    assert_eq!(
        EditError::NotFound {
            path: "a.b".to_owned()
        }
        .to_string(),
        "`a.b` not found"
    );
    assert_eq!(
        EditError::NotPlainSafe {
            value: "1.0 beta".to_owned()
        }
        .to_string(),
        "`1.0 beta` cannot be written as a plain scalar without changing its meaning"
    );
    assert_eq!(
        refused("v: !!str 1\n", "v", "2").to_string(),
        "`v` cannot be edited safely: it has the explicit tag `!!str`"
    );
}

#[test]
fn verification_catches_bad_edits() {
    let input = "a: 1.0 # c\nb: 2.0\n";
    let events = parse_events(input).unwrap();
    let p = path("a");
    let check = |edited: &str, token: &str, value: &str| {
        verify(&Check {
            input,
            edited,
            range: &(3..6),
            token,
            events: &events,
            index: 4,
            path: &p,
            value,
            style: ScalarStyle::Plain,
        })
    };
    assert_eq!(check("a: 1.1 # c\nb: 2.0\n", "1.1", "1.1"), Ok(()));
    // A byte outside the range changed.
    assert!(matches!(
        check("a: 1.1 # c\nb: 2.1\n", "1.1", "1.1"),
        Err(EditError::Verification { reason }) if reason.contains("outside")
    ));
    // The token swallowed the comment: the value read back is not the requested one.
    assert!(matches!(
        check("a: 1.1#c\nb: 2.0\n", "1.1#c", "1.1"),
        Err(EditError::Verification { .. })
    ));
    // The token changed the structure of the file.
    assert!(matches!(
        check("a: [1] # c\nb: 2.0\n", "[1]", "[1]"),
        Err(EditError::Verification { .. })
    ));
    // The result no longer parses.
    assert!(matches!(
        check("a: \"1 # c\nb: 2.0\n", "\"1", "1"),
        Err(EditError::Verification { reason }) if reason.contains("no longer parses")
    ));
}

// ---------------------------------------------------------------------------------------------
// Paths.
// ---------------------------------------------------------------------------------------------

#[test]
fn path_parsing() {
    let key = |k: &str| Segment::Key(k.to_owned());
    assert_eq!(
        path("kubernetesVersion").segments(),
        [key("kubernetesVersion")]
    );
    assert_eq!(
        path("addons.coredns").segments(),
        [key("addons"), key("coredns")]
    );
    assert_eq!(
        path(".spec.chart.spec.version"),
        YamlPath::keys(&["spec", "chart", "spec", "version"])
    );
    assert_eq!(
        path("spec.values[0].tag").segments(),
        [key("spec"), key("values"), Segment::Index(0), key("tag")]
    );
    assert_eq!(
        path("metadata.annotations[\"example.com/version\"]").segments(),
        [
            key("metadata"),
            key("annotations"),
            key("example.com/version")
        ]
    );
    assert_eq!(
        path("a['it\\'s'].b").segments(),
        [key("a"), key("it's"), key("b")]
    );
    assert_eq!(
        path("[0][12]").segments(),
        [Segment::Index(0), Segment::Index(12)]
    );
    assert_eq!(path(".[0]").segments(), [Segment::Index(0)]);
    assert_eq!(path("a.[0]").segments(), [key("a"), Segment::Index(0)]);
    assert_eq!(path("vpc-cni").segments(), [key("vpc-cni")]);
    assert!(path(".").segments().is_empty());
    for bad in [
        "",
        "a.",
        "..a",
        "a..b",
        "a[",
        "a[x]",
        "a[0",
        "a[\"b]",
        "a b",
        "a]",
        "[-1]",
        "[99999999999999999999999]",
        "a[0]b",
    ] {
        assert!(YamlPath::parse(bad).is_err(), "{bad:?} should not parse");
    }
}

#[test]
fn path_display_is_canonical() {
    for (input, canonical) in [
        ("addons.coredns", "addons.coredns"),
        (".spec.chart.spec.version", "spec.chart.spec.version"),
        ("spec.values[0].tag", "spec.values[0].tag"),
        (
            "metadata.annotations['a.b/c']",
            "metadata.annotations[\"a.b/c\"]",
        ),
        ("[\"a\"]", "a"),
        ("[0].x", "[0].x"),
        ("[\"\"]", "[\"\"]"),
        ("['say \"hi\"']", "[\"say \\\"hi\\\"\"]"),
        (".", "."),
    ] {
        let parsed = path(input);
        assert_eq!(parsed.to_string(), canonical, "{input}");
        assert_eq!(path(canonical), parsed, "{canonical}");
    }
}

// ---------------------------------------------------------------------------------------------
// Property tests.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Quote {
    Plain,
    Single,
    Double,
}

#[derive(Debug, Clone)]
struct Deco {
    /// Spaces between the indicator (`:` or `-`) and an inline value.
    spaces: usize,
    /// A comment trailing the entry's line.
    trailing: Option<String>,
    /// A comment line above the entry.
    above: Option<String>,
    /// For a block collection inside a block sequence: start it on the `-` line.
    compact: bool,
}

#[derive(Debug, Clone)]
enum Node {
    Scalar(String, Quote),
    Map(Vec<(String, Quote, Node, Deco)>, bool),
    Seq(Vec<(Node, Deco)>, bool),
}

fn version() -> impl Strategy<Value = String> {
    "v?[0-9]{1,2}\\.[0-9]{1,2}(\\.[0-9]{1,3})?(-[a-z]{1,6}(\\.[0-9])?)?(\\+[a-z0-9]{1,4})?"
}

fn quote() -> impl Strategy<Value = Quote> {
    prop_oneof![Just(Quote::Plain), Just(Quote::Single), Just(Quote::Double)]
}

fn scalar() -> impl Strategy<Value = Node> {
    prop_oneof![
        3 => (version(), quote()).prop_map(|(v, q)| Node::Scalar(v, q)),
        // Quoted values with awkward content: `#`, `:`, spaces, `'`, braces.
        1 => "[a-z0-9 #:'{},.-]{0,10}".prop_map(|v| Node::Scalar(v, Quote::Single)),
        1 => "[a-z0-9 #:'{},.-]{0,10}".prop_map(|v| Node::Scalar(v, Quote::Double)),
    ]
}

fn comment() -> impl Strategy<Value = Option<String>> {
    proptest::option::weighted(0.3, "[a-zA-Z0-9 #:'\"{}\\[\\],.-]{0,12}")
}

fn deco() -> impl Strategy<Value = Deco> {
    (1..=3usize, comment(), comment(), any::<bool>()).prop_map(
        |(spaces, trailing, above, compact)| Deco {
            spaces,
            trailing,
            above,
            compact,
        },
    )
}

fn entries(inner: BoxedStrategy<Node>) -> impl Strategy<Value = Vec<(String, Quote, Node, Deco)>> {
    prop::collection::vec(("[a-z]{1,4}", quote(), inner, deco()), 1..4).prop_map(|entries| {
        entries
            .into_iter()
            .enumerate()
            // Letters then the index: keys are unique within a mapping.
            .map(|(i, (key, q, node, deco))| (format!("{key}{i}"), q, node, deco))
            .collect()
    })
}

fn node() -> impl Strategy<Value = Node> {
    scalar().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            (entries(inner.clone()), prop::bool::weighted(0.3))
                .prop_map(|(entries, flow)| Node::Map(entries, flow)),
            (
                prop::collection::vec((inner, deco()), 1..4),
                prop::bool::weighted(0.3)
            )
                .prop_map(|(items, flow)| Node::Seq(items, flow)),
        ]
    })
}

fn quoted(value: &str, q: Quote) -> String {
    match q {
        Quote::Plain => value.to_owned(),
        Quote::Single => format!("'{}'", value.replace('\'', "''")),
        Quote::Double => format!("\"{value}\""),
    }
}

/// Render in flow style (on one line).
fn flow(node: &Node) -> String {
    match node {
        Node::Scalar(v, q) => quoted(v, *q),
        Node::Map(entries, _) => {
            let inner: Vec<String> = entries
                .iter()
                .map(|(k, q, v, d)| {
                    format!("{}:{}{}", quoted(k, *q), " ".repeat(d.spaces), flow(v))
                })
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        Node::Seq(items, _) => {
            let inner: Vec<String> = items.iter().map(|(v, _)| flow(v)).collect();
            format!("[{}]", inner.join(", "))
        }
    }
}

fn is_block(node: &Node) -> bool {
    matches!(node, Node::Map(_, false) | Node::Seq(_, false))
}

fn trailing(deco: &Deco) -> String {
    deco.trailing
        .as_ref()
        .map(|c| format!(" #{c}"))
        .unwrap_or_default()
}

/// Render a block collection whose lines start at `indent` columns.
fn block(node: &Node, indent: usize, step: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match node {
        Node::Map(entries, _) => {
            for (k, q, v, d) in entries {
                if let Some(above) = &d.above {
                    out.push_str(&format!("{pad}#{above}\n"));
                }
                let key = quoted(k, *q);
                if is_block(v) {
                    out.push_str(&format!("{pad}{key}:{}\n", trailing(d)));
                    block(v, indent + step, step, out);
                } else {
                    let spaces = " ".repeat(d.spaces);
                    out.push_str(&format!("{pad}{key}:{spaces}{}{}\n", flow(v), trailing(d)));
                }
            }
        }
        Node::Seq(items, _) => {
            for (v, d) in items {
                if let Some(above) = &d.above {
                    out.push_str(&format!("{pad}#{above}\n"));
                }
                if is_block(v) && d.compact {
                    // `- key: value` / `- - item`: the child's first line shares the dash.
                    let mut child = String::new();
                    block(v, indent + step, step, &mut child);
                    let dash = format!("{pad}-{}", " ".repeat(step - 1));
                    out.push_str(&dash);
                    out.push_str(child.get(indent + step..).unwrap_or_default());
                } else if is_block(v) {
                    out.push_str(&format!("{pad}-{}\n", trailing(d)));
                    block(v, indent + step, step, out);
                } else {
                    let spaces = " ".repeat(d.spaces);
                    out.push_str(&format!("{pad}-{spaces}{}{}\n", flow(v), trailing(d)));
                }
            }
        }
        Node::Scalar(..) => out.push_str(&format!("{pad}{}\n", flow(node))),
    }
}

/// Every scalar leaf with its path and value.
fn leaves(node: &Node, prefix: &mut Vec<Segment>, out: &mut Vec<(YamlPath, String)>) {
    match node {
        Node::Scalar(v, _) => out.push((YamlPath::from_segments(prefix.clone()), v.clone())),
        Node::Map(entries, _) => {
            for (k, _, v, _) in entries {
                prefix.push(Segment::Key(k.clone()));
                leaves(v, prefix, out);
                prefix.pop();
            }
        }
        Node::Seq(items, _) => {
            for (i, (v, _)) in items.iter().enumerate() {
                prefix.push(Segment::Index(i));
                leaves(v, prefix, out);
                prefix.pop();
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Doc {
    text: String,
    leaves: Vec<(YamlPath, String)>,
}

fn document() -> impl Strategy<Value = Doc> {
    (
        entries(node().boxed()),
        prop_oneof![Just(2usize), Just(4usize)],
        any::<bool>(), // CRLF
        any::<bool>(), // BOM
        any::<bool>(), // leading unrelated document
        any::<bool>(), // explicit `---`
        any::<bool>(), // trailing `...`
        comment(),     // header comment
    )
        .prop_map(
            |(entries, step, crlf, bom, other_doc, start, end, header)| {
                let root = Node::Map(entries, false);
                let mut text = String::new();
                if bom {
                    text.push('\u{feff}');
                }
                if let Some(header) = header {
                    text.push_str(&format!("#{header}\n"));
                }
                if other_doc {
                    text.push_str("zz: 1.0 # another document\n---\n");
                } else if start {
                    text.push_str("--- # start\n");
                }
                block(&root, 0, step, &mut text);
                if end {
                    text.push_str("...\n");
                }
                if crlf {
                    text = text.replace('\n', "\r\n");
                }
                let mut found = Vec::new();
                leaves(&root, &mut Vec::new(), &mut found);
                Doc {
                    text,
                    leaves: found,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn edits_change_only_the_target(
        doc in document(),
        pick in any::<prop::sample::Index>(),
        value in version(),
    ) {
        let (target, old) = pick.get(&doc.leaves).clone();
        prop_assert_eq!(get_scalar(&doc.text, &target), Ok(old.clone()), "text:\n{}", doc.text);
        let edit = set_scalar(&doc.text, &target, &value);
        prop_assert!(edit.is_ok(), "{:?}\npath {}\ntext:\n{}", edit, target, doc.text);
        let edit = edit.unwrap();
        prop_assert_eq!(&edit.old, &old);
        prop_assert_eq!(edit.changed, old != value);
        let start = edit.range.start;
        let tail = doc.text.len() - edit.range.end;
        prop_assert_eq!(&edit.text[..start], &doc.text[..start]);
        prop_assert_eq!(
            &edit.text[edit.text.len() - tail..],
            &doc.text[edit.range.end..]
        );
        prop_assert_eq!(get_scalar(&edit.text, &target), Ok(value.clone()));
        for (other, before) in &doc.leaves {
            if other != &target {
                prop_assert_eq!(get_scalar(&edit.text, other), Ok(before.clone()), "{}", other);
            }
        }
        prop_assert_eq!(&YamlPath::parse(&target.to_string()).unwrap(), &target);
    }

    #[test]
    fn never_panics_on_arbitrary_input(
        text in "[a-z0-9:\\-\\[\\]{},'\"#&*!|>? \n\t.\\\\]{0,60}",
        at in "[a-z.\\[\\]0-9\"]{1,8}",
        value in "[a-z0-9 .'\"\\\\-]{0,6}",
    ) {
        if let Ok(p) = YamlPath::parse(&at) {
            let _ = get_scalar(&text, &p);
            if let Ok(edit) = set_scalar(&text, &p, &value) {
                prop_assert_eq!(get_scalar(&edit.text, &p), Ok(value.clone()));
            }
        }
        for p in [YamlPath::keys(&["a"]), YamlPath::keys(&[])] {
            let _ = get_scalar(&text, &p);
            let _ = set_scalar(&text, &p, &value);
        }
    }

    #[test]
    fn paths_round_trip_through_display(
        segments in prop::collection::vec(
            prop_oneof![
                "[a-z./\"' \\\\\\[\\]-]{0,6}".prop_map(Segment::Key),
                (0..1000usize).prop_map(Segment::Index),
            ],
            0..5,
        ),
    ) {
        let p = YamlPath::from_segments(segments);
        prop_assert_eq!(YamlPath::parse(&p.to_string()), Ok(p.clone()), "{}", p);
    }
}
