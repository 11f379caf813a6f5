//! Property tests of the loader (`Source::from_dir`) and of checksums.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use backstop::Checksum;
use backstop::Source;
use proptest::prelude::*;

fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) {
    std::fs::write(dir.join(name), content).unwrap();
}

/// Writes a valid migration `stem` (forward, rollback, probe) on its own table.
fn write_valid(dir: &Path, stem: &str, table: &str) {
    write(
        dir,
        &format!("{stem}.sql"),
        format!("CREATE TABLE {table} (x);\n"),
    );
    write(
        dir,
        &format!("{stem}.rollback.sql"),
        format!("DROP TABLE {table};\n"),
    );
    write(
        dir,
        &format!("{stem}.probe.sql"),
        format!("SELECT count(*) FROM sqlite_master WHERE name = '{table}';\n"),
    );
}

/// 64 cases per property; failures are not persisted (no regression files in the tree).
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ----- well-formed names --------------------------------------------------------------------

/// Distinct positive versions, each with a zero-padding width and a description.
fn well_formed_set() -> impl Strategy<Value = BTreeMap<i64, (usize, String)>> {
    proptest::collection::btree_map(
        prop_oneof![1i64..=20, 1i64..=1_000_000_000_000],
        (0usize..=6, "[A-Za-z0-9_-]{1,24}"),
        1..12,
    )
}

proptest! {
    #![proptest_config(config())]

    /// Any set of well-formed names loads, in version order, with exactly those versions and
    /// descriptions, whatever the zero-padding.
    #[test]
    fn well_formed_names_load_in_version_order(set in well_formed_set()) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut expected_paths = Vec::new();
        for (version, (pad, description)) in &set {
            let digits = version.to_string();
            let padded = format!("{digits:0>width$}", width = digits.len() + pad);
            let stem = format!("{padded}_{description}");
            write_valid(dir, &stem, &format!("t{version}"));
            expected_paths.push(dir.join(format!("{stem}.sql")));
        }
        let source = Source::from_dir(dir).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let got: Vec<(i64, String)> = source
            .migrations()
            .iter()
            .map(|m| (m.version(), m.description().to_owned()))
            .collect();
        let expected: Vec<(i64, String)> =
            set.iter().map(|(v, (_, d))| (*v, d.clone())).collect();
        prop_assert_eq!(got, expected);
        let paths: Vec<&Path> = source.migrations().iter().map(|m| m.path()).collect();
        prop_assert_eq!(paths, expected_paths.iter().map(|p| p.as_path()).collect::<Vec<_>>());
        prop_assert_eq!(source.latest_version(), *set.keys().last().unwrap());
        for version in set.keys() {
            prop_assert_eq!(source.get(*version).map(|m| m.version()), Some(*version));
        }
    }
}

// ----- checksums ----------------------------------------------------------------------------

/// One line of a valid script: statements (with `;` inside strings) and comments.
fn script_line() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,8}".prop_map(|t| format!("CREATE TABLE IF NOT EXISTS {t} (x);")),
        "[A-Za-z0-9 ;,.]{0,20}".prop_map(|s| format!("INSERT INTO t VALUES ('{s}');")),
        "[ -~]{0,30}".prop_map(|s| format!("-- {s}")),
        Just(String::new()),
    ]
}

/// A valid script as lines (the first one always a statement, so it is never empty).
fn script_lines() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(script_line(), 0..8).prop_map(|mut lines| {
        lines.insert(0, "CREATE TABLE t (x);".to_owned());
        lines
    })
}

/// The script with each line ended by LF or CRLF as `crlf` says (cycled), the last line
/// ended or not.
fn render(lines: &[String], crlf: &[bool], final_newline: bool) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        out.push_str(line);
        if i + 1 < lines.len() || final_newline {
            out.push_str(if crlf[i % crlf.len()] { "\r\n" } else { "\n" });
        }
    }
    out
}

/// What the checksum is documented to see: a leading BOM dropped, CRLF read as LF.
fn normalise(text: &str) -> String {
    text.strip_prefix('\u{feff}')
        .unwrap_or(text)
        .replace("\r\n", "\n")
}

proptest! {
    #![proptest_config(config())]

    /// LF, CRLF, mixed and BOM variants of one script have one checksum, through
    /// `Checksum::of` and through files loaded from a directory.
    #[test]
    fn line_endings_and_bom_do_not_change_the_checksum(
        lines in script_lines(),
        mixed in proptest::collection::vec(any::<bool>(), 1..8),
        final_newline in any::<bool>(),
    ) {
        let lf = render(&lines, &[false], final_newline);
        let variants = [
            render(&lines, &[true], final_newline),
            render(&lines, &mixed, final_newline),
            format!("\u{feff}{lf}"),
            format!("\u{feff}{}", render(&lines, &[true], final_newline)),
            format!("\u{feff}{}", render(&lines, &mixed, final_newline)),
        ];
        let reference = Checksum::of(&lf);
        for variant in &variants {
            prop_assert_eq!(Checksum::of(variant), reference, "{:?}", variant);
        }

        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write(dir, "001_lf.sql", &lf);
        write(dir, "001_lf.rollback.sql", "DROP TABLE t;\n");
        write(dir, "001_lf.probe.sql", "SELECT 1;\n");
        for (i, variant) in variants.iter().enumerate() {
            let stem = format!("{:03}_variant{i}", i + 2);
            write(dir, &format!("{stem}.sql"), variant);
            write(dir, &format!("{stem}.rollback.sql"), "DROP TABLE t;\n");
            write(dir, &format!("{stem}.probe.sql"), "SELECT 1;\n");
        }
        let source = Source::from_dir(dir).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(source.migrations().len(), variants.len() + 1);
        for migration in source.migrations() {
            prop_assert_eq!(migration.checksum(), reference, "{}", migration.path().display());
        }
    }

    /// Scripts whose contents differ (not only in line endings or a BOM) checksum differently.
    #[test]
    fn different_scripts_have_different_checksums(
        lines in script_lines(),
        at in any::<proptest::sample::Index>(),
        extra in "[ -~]",
        crlf in any::<bool>(),
    ) {
        let original = render(&lines, &[crlf], true);
        // Insert one printable character at a character boundary.
        let boundaries: Vec<usize> = original
            .char_indices()
            .map(|(i, _)| i)
            .chain([original.len()])
            .collect();
        let pos = boundaries[at.index(boundaries.len())];
        let changed = format!("{}{extra}{}", &original[..pos], &original[pos..]);
        prop_assert_ne!(Checksum::of(&original), Checksum::of(&changed));
        // Also against the other line-ending convention of the changed text.
        let other = changed.replace("\r\n", "\n").replace('\n', "\r\n");
        prop_assert_ne!(Checksum::of(&original), Checksum::of(&other));
    }

    /// Over a small alphabet rich in `\r`, `\n` and BOMs: checksums are equal exactly when the
    /// normalised texts are.
    #[test]
    fn checksums_are_equal_exactly_when_normalised_texts_are(
        a in "[a\r\n\u{feff}]{0,8}",
        b in "[a\r\n\u{feff}]{0,8}",
    ) {
        prop_assert_eq!(
            Checksum::of(&a) == Checksum::of(&b),
            normalise(&a) == normalise(&b),
            "{:?} vs {:?}", a, b
        );
    }
}

// ----- arbitrary input never panics ---------------------------------------------------------

/// Bytes for a script: anything, text with SQL's special characters, or SQL-like fragments.
fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        "[ -~\r\n\t]{0,120}".prop_map(String::into_bytes),
        proptest::collection::vec(
            prop_oneof![
                Just("SELECT 1;"),
                Just("CREATE TRIGGER tr AFTER INSERT ON t BEGIN "),
                Just("END;"),
                Just("BEGIN;"),
                Just("'"),
                Just("\""),
                Just("/*"),
                Just("*/"),
                Just("--"),
                Just("\n"),
                Just("\r\n"),
                Just(";"),
                Just("\u{feff}"),
                Just("\0"),
                Just("\u{e9}"),
                Just("WITH x AS (SELECT 1) SELECT * FROM x"),
                Just("VACUUM"),
            ],
            0..16,
        )
        .prop_map(|parts| parts.concat().into_bytes()),
    ]
}

/// A string that is a valid file name on Unix: no `/`, no NUL, not `.` or `..`, at most 200
/// bytes.
fn file_name() -> impl Strategy<Value = String> {
    let stem = prop_oneof![
        any::<String>(),
        "[0-9]{0,3}_?[A-Za-z0-9._ -]{0,12}",
        "0*[1-9]{1,3}_[a-z]{1,4}",
    ];
    let suffix = prop_oneof![
        Just(""),
        Just(".sql"),
        Just(".rollback.sql"),
        Just(".probe.sql"),
        Just(".down.sql"),
        Just(".SQL"),
    ];
    (stem, suffix)
        .prop_map(|(stem, suffix)| {
            let mut name: String = stem.chars().filter(|c| *c != '/' && *c != '\0').collect();
            while name.len() + suffix.len() > 200 {
                name.pop();
            }
            name + suffix
        })
        .prop_filter("not a file name", |n| {
            !n.is_empty() && n != "." && n != ".."
        })
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary files with arbitrary names never panic the loader.
    #[test]
    fn arbitrary_files_never_panic_the_loader(
        files in proptest::collection::vec((file_name(), content()), 0..10),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut names = BTreeSet::new();
        for (name, bytes) in &files {
            write(dir, name, bytes);
            names.insert(name.clone());
        }
        match Source::from_dir(dir) {
            Ok(source) => {
                // Only visible `.sql` files can make migrations, three per migration.
                let candidates = names
                    .iter()
                    .filter(|n| n.ends_with(".sql") && !n.starts_with('.'))
                    .count();
                prop_assert_eq!(candidates, 3 * source.migrations().len());
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// Arbitrary bytes as the forward, rollback or probe script of an otherwise valid
    /// migration never panic the loader, and a refusal names that file.
    #[test]
    fn arbitrary_script_contents_never_panic_the_loader(
        which in 0usize..3,
        bytes in content(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write_valid(dir, "001_a", "a");
        write_valid(dir, "002_b", "b");
        let name = ["002_b.sql", "002_b.rollback.sql", "002_b.probe.sql"][which];
        write(dir, name, &bytes);
        match Source::from_dir(dir) {
            Ok(source) => prop_assert_eq!(source.migrations().len(), 2),
            Err(e) => {
                let message = e.to_string();
                prop_assert!(message.contains(name), "{} does not name {}", message, name);
                prop_assert!(
                    matches!(
                        e.kind(),
                        "invalid_utf8" | "empty_script" | "invalid_script"
                    ),
                    "{}: {}", e.kind(), message
                );
            }
        }
    }
}
