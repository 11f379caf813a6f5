//! `sqlx-data.json` is the offline query metadata of `.sqlx/` in the single-file layout that
//! sqlx 0.6 and older tools read. This test fails when the two disagree; run it with
//! `UPDATE_SQLX_DATA=1` after `cargo sqlx prepare` to regenerate the file.

use std::path::Path;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The single-file metadata built from `.sqlx/`.
fn from_sqlx_dir() -> Value {
    let mut out = Map::new();
    out.insert("db".into(), Value::from("SQLite"));
    let mut count = 0;
    for entry in std::fs::read_dir(root().join(".sqlx")).expect(".sqlx/ exists") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(hash) = name
            .strip_prefix("query-")
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let data: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(data["db_name"], "SQLite", "{name}");
        let query = data["query"].as_str().expect("a query");
        // The file name is the SHA-256 of the query text: a stale file would not match.
        assert_eq!(
            hex::encode(Sha256::digest(query.as_bytes())),
            hash,
            "{name}"
        );
        assert_eq!(data["hash"], hash, "{name}");
        let mut item = Map::new();
        item.insert("describe".into(), data["describe"].clone());
        item.insert("query".into(), Value::from(query));
        out.insert(hash.to_owned(), Value::Object(item));
        count += 1;
    }
    assert!(count > 0, ".sqlx/ holds no query");
    Value::Object(out)
}

#[test]
fn sqlx_data_json_matches_the_sqlx_directory() {
    let expected = from_sqlx_dir();
    let path = root().join("sqlx-data.json");
    if std::env::var_os("UPDATE_SQLX_DATA").is_some() {
        let text = serde_json::to_string_pretty(&expected).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
    }
    let actual: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("sqlx-data.json exists"))
            .expect("sqlx-data.json is JSON");
    assert!(
        actual == expected,
        "sqlx-data.json disagrees with .sqlx/: run `UPDATE_SQLX_DATA=1 cargo test --test library offline_metadata`"
    );
}
