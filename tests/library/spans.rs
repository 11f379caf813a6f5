//! Tracing spans: one per operation, with the database and the versions it went from and to
//! (or its error's kind), and inside it the backup, the wait for the write lock, each migration
//! and the commit: what a service sees of one run in its traces.

use std::sync::{Arc, Mutex};

use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use crate::common::*;

/// A span as a subscriber saw it: its name, its parent's name, and its fields as text.
#[derive(Debug, Clone)]
struct Seen {
    id: u64,
    name: &'static str,
    parent: Option<&'static str>,
    fields: String,
}

#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<Seen>>>);

struct Text<'a>(&'a mut String);

impl Visit for Text<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let parent = ctx.span(id).and_then(|s| s.parent()).map(|p| p.name());
        let mut fields = String::new();
        attrs.record(&mut Text(&mut fields));
        self.0.lock().unwrap().push(Seen {
            id: id.into_u64(),
            name: attrs.metadata().name(),
            parent,
            fields,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut spans = self.0.lock().unwrap();
        if let Some(seen) = spans.iter_mut().rev().find(|s| s.id == id.into_u64()) {
            values.record(&mut Text(&mut seen.fields));
        }
    }
}

impl Spans {
    fn named(&self, name: &str) -> Vec<Seen> {
        let spans = self.0.lock().unwrap();
        spans.iter().filter(|s| s.name == name).cloned().collect()
    }
}

#[tokio::test]
async fn a_migrate_is_one_span_with_its_steps_inside() {
    let ws = Workspace::new();
    ws.people_migration().email_migration();
    exec(&ws.db(), "CREATE TABLE notes (body TEXT)").await;
    let pool = ws.pool().await;
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    ws.migrator().migrate(&pool).await.unwrap();

    let migrate = spans.named("migrate");
    assert_eq!(migrate.len(), 1, "{migrate:?}");
    let fields = &migrate[0].fields;
    let database = format!("database={}", ws.db().display());
    for field in [
        database.as_str(),
        "from_version=0",
        "to_version=2",
        "dry_run=false",
    ] {
        assert!(fields.contains(field), "{field} in {fields}");
    }
    let migrations = spans.named("migration");
    let versions: Vec<&str> = migrations.iter().map(|m| m.fields.as_str()).collect();
    assert_eq!(
        versions,
        [
            "version=1 direction=\"forward\" ",
            "version=2 direction=\"forward\" "
        ]
    );
    for step in ["backup", "write_lock", "migration", "commit"] {
        let inside = spans.named(step);
        assert!(!inside.is_empty(), "no {step} span");
        assert!(
            inside.iter().all(|s| s.parent == Some("migrate")),
            "{step}: {inside:?}"
        );
    }

    // A rollback by scripts has a span per migration too; a failed run says its error's kind.
    ws.migrator()
        .rollback(&pool, 0, backstop::RollbackStrategy::Scripts)
        .await
        .unwrap();
    let rollback = spans.named("rollback");
    assert!(rollback[0].fields.contains("to_version=0"), "{rollback:?}");
    let undone: Vec<Seen> = spans
        .named("migration")
        .into_iter()
        .filter(|m| m.parent == Some("rollback"))
        .collect();
    assert_eq!(undone.len(), 2, "{undone:?}");
    ws.migrator().migrate(&pool).await.unwrap();
    ws.write(
        "001_people.sql",
        "CREATE TABLE people (id INTEGER PRIMARY KEY);\n",
    );
    let err = ws.migrator().migrate(&pool).await.unwrap_err();
    assert_eq!(err.kind(), "checksum_mismatch");
    let failed = spans.named("migrate");
    let kind = format!("error=\"{}\"", err.kind());
    assert!(failed.last().unwrap().fields.contains(&kind), "{failed:?}");
}
