//! Cached backend lists that scripts read synchronously with `lookup(table, key)`.
//!
//! Scripts never do I/O (see DESIGN.md), so data a mapping needs from the legacy app (the
//! office list, the role list …) is fetched by the gateway on a refresh interval and
//! published here. Readers never block writers: each table set swaps a new map in.

use arc_swap::ArcSwap;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// One cached list: records keyed by the normalised value of their key field.
type LookupTable = HashMap<String, Value>;

/// Named lookup tables shared by the gateway (which fills them from the backend) and every
/// script call (which reads them). Cloning is cheap: all clones see the same tables.
#[derive(Clone, Default)]
pub struct Lookups {
    tables: Arc<ArcSwap<HashMap<String, Arc<LookupTable>>>>,
}

impl std::fmt::Debug for Lookups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tables = self.tables.load();
        let mut names: Vec<&String> = tables.keys().collect();
        names.sort();
        f.debug_struct("Lookups").field("tables", &names).finish()
    }
}

/// Keys compare trimmed and case-insensitively, since integrators type office names by hand
/// in Entra and the backend's spelling rarely matches exactly.
fn normalise_key(key: &str) -> String {
    key.trim().to_lowercase()
}

/// The key-field value of `record` as a string: strings as they are, numbers and booleans in
/// their JSON spelling (so a table keyed by a numeric id can be looked up with "7").
fn key_of(record: &Value, key_field: &str) -> Option<String> {
    match record.get(key_field)? {
        Value::String(s) => Some(normalise_key(s)),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Lookups {
    /// An empty set of tables; runs once per profile when the gateway starts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces table `name` with `records`, keyed by each record's `key_field` (trimmed,
    /// case-insensitive). Runs whenever the gateway refreshes a lookup from the backend.
    /// Records without a usable key are skipped; when two records share a key the first one
    /// wins, so the result does not depend on the backend's sort order past the first match.
    pub fn set(&self, name: &str, key_field: &str, records: Vec<Value>) {
        let mut table = LookupTable::with_capacity(records.len());
        let mut skipped = 0usize;
        for record in records {
            match key_of(&record, key_field) {
                Some(key) => {
                    table.entry(key).or_insert(record);
                }
                None => skipped += 1,
            }
        }
        if skipped > 0 {
            tracing::warn!(
                table = name,
                key_field,
                skipped,
                "lookup records without a key were skipped"
            );
        }
        let table = Arc::new(table);
        self.tables.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.insert(name.to_string(), Arc::clone(&table));
            next
        });
    }

    /// Makes table `name` of `from` (if it has one) a table of these lookups too, as it is.
    /// Runs when a reload starts from the running tables.
    pub fn copy_table(&self, from: &Lookups, name: &str) {
        let Some(table) = from.tables.load().get(name).cloned() else {
            return;
        };
        self.tables.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.insert(name.to_string(), Arc::clone(&table));
            next
        });
    }

    /// The record of table `name` whose key equals `key` (trimmed, case-insensitive), or
    /// `None` when the table or the key is unknown. Runs on every script `lookup` call.
    pub fn get(&self, name: &str, key: &str) -> Option<Value> {
        self.with_record(name, key, Value::clone)
    }

    /// Applies `f` to the matching record without cloning it out of the cache first.
    pub(crate) fn with_record<T>(
        &self,
        name: &str,
        key: &str,
        f: impl FnOnce(&Value) -> T,
    ) -> Option<T> {
        let tables = self.tables.load();
        tables.get(name)?.get(&normalise_key(key)).map(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_trimmed_and_case_insensitive() {
        let l = Lookups::new();
        l.set(
            "offices",
            "name",
            vec![
                json!({"id": 1, "name": "Head Office"}),
                json!({"id": 2, "name": "Sydney"}),
            ],
        );
        assert_eq!(l.get("offices", "  head office ").unwrap()["id"], 1);
        assert_eq!(l.get("offices", "SYDNEY").unwrap()["id"], 2);
        assert!(l.get("offices", "Perth").is_none());
        assert!(l.get("roles", "Sydney").is_none());
    }

    #[test]
    fn numeric_keys_first_record_wins_and_keyless_skipped() {
        let l = Lookups::new();
        l.set(
            "users",
            "id",
            vec![
                json!({"id": 7, "n": "first"}),
                json!({"id": 7, "n": "second"}),
                json!({"n": "no key"}),
                json!({"id": null}),
            ],
        );
        assert_eq!(l.get("users", "7").unwrap()["n"], "first");
    }

    #[test]
    fn set_replaces_one_table_and_clones_share_state() {
        let l = Lookups::new();
        let seen_by_scripts = l.clone();
        l.set("a", "k", vec![json!({"k": "x"})]);
        l.set("b", "k", vec![json!({"k": "y"})]);
        l.set("a", "k", vec![json!({"k": "z"})]);
        assert!(seen_by_scripts.get("a", "x").is_none());
        assert!(seen_by_scripts.get("a", "z").is_some());
        assert!(seen_by_scripts.get("b", "y").is_some());
        assert_eq!(format!("{l:?}"), r#"Lookups { tables: ["a", "b"] }"#);
    }

    #[test]
    fn concurrent_sets_of_different_tables_are_not_lost() {
        let l = Lookups::new();
        std::thread::scope(|s| {
            for t in 0..4 {
                let l = l.clone();
                s.spawn(move || {
                    for i in 0..50 {
                        l.set(&format!("t{t}"), "k", vec![json!({"k": i.to_string()})]);
                    }
                });
            }
        });
        for t in 0..4 {
            assert!(l.get(&format!("t{t}"), "49").is_some(), "table t{t}");
        }
    }
}
