//! The layout the README promises: its table's rows are `src/`'s entries, top to bottom, and no
//! module uses one of a row above its own (read from the source text: `crate::<module>`).

use std::collections::BTreeSet;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The layers as the README's layout table lists them, top first: each row's first cell,
/// `` `name.rs` `` or `` `name/` ``, as a module name.
fn layers() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let table = readme
        .split("## Layout")
        .nth(1)
        .expect("a Layout section")
        .lines()
        .skip_while(|l| !l.starts_with("| module"))
        .skip(2)
        .take_while(|l| l.starts_with('|'));
    table
        .map(|row| {
            let cell = row.split('|').nth(1).unwrap().trim();
            let name = cell.trim_matches('`');
            name.trim_end_matches('/')
                .trim_end_matches(".rs")
                .to_owned()
        })
        .collect()
}

/// Every `.rs` file below `dir`.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to.
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(root().join("src")).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

#[test]
fn the_readme_table_names_every_entry_of_src() {
    let listed: BTreeSet<String> = layers().into_iter().collect();
    let present: BTreeSet<String> = std::fs::read_dir(root().join("src"))
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.trim_end_matches(".rs").to_owned()
        })
        .collect();
    assert_eq!(listed, present, "the README's layout table and src/ differ");
}

#[test]
fn no_module_uses_one_of_a_layer_above() {
    let layers = layers();
    let rank = |module: &str| layers.iter().position(|l| l == module);
    let mut files = Vec::new();
    sources(&root().join("src"), &mut files);
    let mut upward = Vec::new();
    for file in &files {
        let module = module_of(file);
        let own = rank(&module).unwrap_or_else(|| panic!("{module} is not in the README's table"));
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for used in code.split("crate::").skip(1) {
                let name: String = used
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let upward_use = match rank(&name) {
                    Some(theirs) => theirs < own,
                    // A root re-export (`crate::Error`) hides where the item lives: only the
                    // layers at the top may use them.
                    None => name.starts_with(char::is_uppercase) && own > rank("cli").unwrap(),
                };
                if upward_use && name != module {
                    upward.push(format!(
                        "{}:{}: {module} uses crate::{name}",
                        file.display(),
                        number + 1
                    ));
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "arrows that go up:\n{}",
        upward.join("\n")
    );
}
