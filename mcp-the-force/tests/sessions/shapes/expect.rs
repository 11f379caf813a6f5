//! The expected results of migrations 001 + 002 and of their rollback,
//! computed in Rust from the fixture data (the generator's ground truth for
//! timestamps), independently of the SQL under test.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Fixture, HistoryStore, LegacySession, NO_EXPIRY, Shape, UnifiedRow};

/// A row of `vector_stores_set_aside`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SetAside {
    pub row: LegacySession,
    pub reason: String,
    pub kept_by_session_id: Option<String>,
}

/// The whole expected unified end state.
#[derive(Clone, Debug, Default)]
pub struct EndState {
    /// Sorted by vector_store_id.
    pub rows: Vec<UnifiedRow>,
    /// Legacy rowid of the unified session rows that came from legacy rows.
    pub session_rowids: BTreeMap<String, i64>,
    /// Sorted.
    pub set_aside: Vec<SetAside>,
    /// History stores registered in both tables (shape 3).
    pub merged: usize,
    /// Names that got the store_id suffix.
    pub renamed: Vec<String>,
}

/// Store indexes per type in creation order: (created seconds, microseconds,
/// store_id); types sorted by name.
pub fn creation_order(stores: &[HistoryStore]) -> Vec<(String, Vec<usize>)> {
    let mut by_type: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, s) in stores.iter().enumerate() {
        by_type.entry(s.store_type.clone()).or_default().push(i);
    }
    by_type
        .into_iter()
        .map(|(t, mut v)| {
            v.sort_by(|&a, &b| {
                let (x, y) = (&stores[a], &stores[b]);
                (x.secs, x.micros, &x.store_id).cmp(&(y.secs, y.micros, &y.store_id))
            });
            (t, v)
        })
        .collect()
}

/// Legacy session rows -> unified rows + set-aside rows. The session updated
/// most recently keeps a shared vector_store_id (then later created_at, then
/// the smaller session_id); NULL `protected` becomes 0.
pub fn convert_sessions(legacy: &[LegacySession]) -> (Vec<(i64, UnifiedRow)>, Vec<SetAside>) {
    let mut groups: HashMap<&str, Vec<&LegacySession>> = HashMap::new();
    let mut aside = Vec::new();
    for r in legacy {
        if r.session_id.is_none() {
            aside.push(SetAside {
                row: r.clone(),
                reason: "null_session_id".to_owned(),
                kept_by_session_id: None,
            });
        } else {
            groups.entry(&r.vector_store_id).or_default().push(r);
        }
    }
    let mut rows = Vec::new();
    for (_, mut g) in groups {
        g.sort_by(|a, b| {
            b.updated_at
                .cmp(&a.updated_at)
                .then(b.created_at.cmp(&a.created_at))
                .then(a.session_id.cmp(&b.session_id))
        });
        let keeper = g[0];
        rows.push((
            keeper.rowid,
            UnifiedRow {
                vector_store_id: keeper.vector_store_id.clone(),
                name: None,
                session_id: keeper.session_id.clone(),
                provider: keeper.provider.clone(),
                provider_metadata: None,
                is_protected: Some(keeper.protected.unwrap_or(0)),
                is_active: Some(1),
                created_at: keeper.created_at,
                expires_at: Some(keeper.expires_at),
                updated_at: keeper.updated_at,
                document_count: Some(0),
                rollover_from: None,
            },
        ));
        for other in &g[1..] {
            aside.push(SetAside {
                row: (*other).clone(),
                reason: "shared_vector_store_id".to_owned(),
                kept_by_session_id: keeper.session_id.clone(),
            });
        }
    }
    aside.sort();
    (rows, aside)
}

/// What the old Python tool left: first row per vector_store_id in rowid
/// order wins (INSERT OR IGNORE), the NULL session row fails the CHECK.
pub fn old_tool(legacy: &[LegacySession]) -> Vec<UnifiedRow> {
    let mut sorted: Vec<&LegacySession> = legacy.iter().collect();
    sorted.sort_by_key(|r| r.rowid);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for r in sorted {
        if r.session_id.is_none() || !seen.insert(r.vector_store_id.clone()) {
            continue;
        }
        out.push(UnifiedRow {
            vector_store_id: r.vector_store_id.clone(),
            name: None,
            session_id: r.session_id.clone(),
            provider: r.provider.clone(),
            provider_metadata: None,
            is_protected: Some(r.protected.unwrap_or(0)),
            is_active: Some(1),
            created_at: r.created_at,
            expires_at: Some(r.expires_at),
            updated_at: r.updated_at,
            document_count: Some(0),
            rollover_from: None,
        });
    }
    out
}

/// History stores -> named rows, given the rows already in `vector_stores`.
/// Returns (rows replacing/added, merged count, renamed names).
pub fn convert_history(
    stores: &[HistoryStore],
    existing: &[UnifiedRow],
) -> (Vec<UnifiedRow>, usize, Vec<String>) {
    let by_id: HashMap<&str, &UnifiedRow> = existing
        .iter()
        .map(|r| (r.vector_store_id.as_str(), r))
        .collect();
    let taken: BTreeSet<&str> = existing.iter().filter_map(|r| r.name.as_deref()).collect();
    let mut out = Vec::new();
    let mut merged = 0;
    let mut renamed = Vec::new();
    for (ty, order) in creation_order(stores) {
        let mut prev: Option<String> = None;
        for (pos, &i) in order.iter().enumerate() {
            let s = &stores[i];
            let row = match by_id.get(s.store_id.as_str()) {
                Some(e) => {
                    merged += 1;
                    UnifiedRow {
                        vector_store_id: s.store_id.clone(),
                        name: e.name.clone(),
                        session_id: None,
                        provider: e.provider.clone(),
                        provider_metadata: e.provider_metadata.clone(),
                        is_protected: Some(1),
                        is_active: Some(s.is_active),
                        created_at: s.secs,
                        expires_at: e.expires_at,
                        updated_at: e.updated_at,
                        document_count: Some(s.doc_count),
                        rollover_from: e.rollover_from.clone().or(prev.clone()),
                    }
                }
                None => {
                    let mut name = format!("project-{ty}s-{:03}", pos + 1);
                    if taken.contains(name.as_str()) {
                        name = format!("{name}-{}", s.store_id);
                        renamed.push(name.clone());
                    }
                    UnifiedRow {
                        vector_store_id: s.store_id.clone(),
                        name: Some(name),
                        session_id: None,
                        provider: "openai".to_owned(),
                        provider_metadata: None,
                        is_protected: Some(1),
                        is_active: Some(s.is_active),
                        created_at: s.secs,
                        expires_at: None,
                        updated_at: s.secs,
                        document_count: Some(s.doc_count),
                        rollover_from: prev.clone(),
                    }
                }
            };
            out.push(row);
            prev = Some(s.store_id.clone());
        }
    }
    renamed.sort();
    (out, merged, renamed)
}

/// The expected unified end state of a fixture.
pub fn end_state(fx: &Fixture) -> EndState {
    let mut st = EndState::default();
    let existing: Vec<UnifiedRow> = match fx.shape {
        Shape::Empty => Vec::new(),
        Shape::Legacy => {
            let (rows, aside) = convert_sessions(&fx.legacy_sessions);
            for (rowid, r) in &rows {
                st.session_rowids.insert(r.vector_store_id.clone(), *rowid);
            }
            st.set_aside = aside;
            rows.into_iter().map(|(_, r)| r).collect()
        }
        Shape::NewerApp => fx.unified.clone(),
        Shape::OldTool => old_tool(&fx.legacy_sessions),
    };
    let (history, merged, renamed) = convert_history(&fx.stores, &existing);
    let replaced: BTreeSet<String> = history.iter().map(|r| r.vector_store_id.clone()).collect();
    st.rows = existing
        .iter()
        .filter(|r| !replaced.contains(&r.vector_store_id))
        .cloned()
        .chain(history)
        .collect();
    st.rows.sort();
    st.merged = merged;
    st.renamed = renamed;
    st
}

/// The legacy session row the rollback derives from a unified session row
/// that no carry pair covers.
pub fn derive_legacy_session(u: &UnifiedRow, rowid: i64) -> LegacySession {
    LegacySession {
        rowid,
        session_id: u.session_id.clone(),
        vector_store_id: u.vector_store_id.clone(),
        provider: u.provider.clone(),
        expires_at: u.expires_at.unwrap_or(NO_EXPIRY),
        protected: u.is_protected,
        created_at: u.created_at,
        updated_at: u.updated_at,
    }
}

/// Is this a history store name (what the rollback of 002 moves back)?
pub fn is_history_name(name: &str) -> bool {
    name.starts_with("project-conversations-") || name.starts_with("project-commits-")
}
