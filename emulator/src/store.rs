//! The data: user statuses per collection, in insertion order.
//!
//! Shared by `/beta` and `/v1.0`, as in Graph: the key does not include the
//! version.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::router::CollectionKey;

/// The only entity type served.
pub(crate) const ODATA_TYPE: &str = "#microsoft.graph.deviceConfigurationUserStatus";

/// One `deviceConfigurationUserStatus`. Field order is the JSON order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserStatus {
    /// Always [`ODATA_TYPE`]; serialized first, as Graph does.
    #[serde(rename = "@odata.type")]
    pub(crate) odata_type: &'static str,
    pub(crate) id: String,
    pub(crate) user_display_name: Option<String>,
    pub(crate) devices_count: i32,
    pub(crate) status: String,
    /// Kept as the client's text so fractional digits survive byte for byte.
    pub(crate) last_reported_date_time: String,
    pub(crate) user_principal_name: Option<String>,
}

impl UserStatus {
    /// A status with Graph's defaults for every absent property.
    pub(crate) fn with_defaults(id: String) -> Self {
        UserStatus {
            odata_type: ODATA_TYPE,
            id,
            user_display_name: None,
            devices_count: 0,
            status: "unknown".to_owned(),
            last_reported_date_time: "0001-01-01T00:00:00Z".to_owned(),
            user_principal_name: None,
        }
    }

    /// The entity as a JSON value (for the library API).
    pub(crate) fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// One collection: entries ordered by an ever-increasing sequence number,
/// which also serves as the paging `$skiptoken` (stable across deletes).
#[derive(Debug, Default)]
struct Collection {
    by_seq: BTreeMap<u64, UserStatus>,
    seq_of: HashMap<String, u64>,
}

/// Every collection's data.
#[derive(Debug, Default)]
pub(crate) struct Store {
    collections: HashMap<CollectionKey, Collection>,
    next_seq: u64,
}

/// A store insert that failed because the id is taken.
#[derive(Debug)]
pub(crate) struct Conflict;

impl Store {
    /// Looks up one status.
    pub(crate) fn get(&self, key: &CollectionKey, id: &str) -> Option<&UserStatus> {
        let c = self.collections.get(key)?;
        c.by_seq.get(c.seq_of.get(id)?)
    }

    /// Mutable access to one status.
    pub(crate) fn get_mut(&mut self, key: &CollectionKey, id: &str) -> Option<&mut UserStatus> {
        let c = self.collections.get_mut(key)?;
        let seq = *c.seq_of.get(id)?;
        c.by_seq.get_mut(&seq)
    }

    /// How many statuses a collection holds.
    pub(crate) fn len(&self, key: &CollectionKey) -> usize {
        self.collections.get(key).map_or(0, |c| c.by_seq.len())
    }

    /// Adds a status at the end of its collection.
    pub(crate) fn insert(
        &mut self,
        key: &CollectionKey,
        status: UserStatus,
    ) -> Result<(), Conflict> {
        let c = self.collections.entry(key.clone()).or_default();
        if c.seq_of.contains_key(&status.id) {
            return Err(Conflict);
        }
        self.next_seq += 1;
        c.seq_of.insert(status.id.clone(), self.next_seq);
        c.by_seq.insert(self.next_seq, status);
        Ok(())
    }

    /// Removes a status; false if it was absent.
    pub(crate) fn remove(&mut self, key: &CollectionKey, id: &str) -> bool {
        let Some(c) = self.collections.get_mut(key) else {
            return false;
        };
        match c.seq_of.remove(id) {
            Some(seq) => {
                c.by_seq.remove(&seq);
                true
            }
            None => false,
        }
    }

    /// Up to `top` statuses that pass `keep` after sequence `after`, plus
    /// the skiptoken of the next page when more remain.
    pub(crate) fn page(
        &self,
        key: &CollectionKey,
        after: u64,
        top: usize,
        keep: impl Fn(&UserStatus) -> bool,
    ) -> (Vec<UserStatus>, Option<u64>) {
        let Some(c) = self.collections.get(key) else {
            return (Vec::new(), None);
        };
        let mut iter = c
            .by_seq
            .range(after.saturating_add(1)..)
            .filter(|(_, u)| keep(u));
        let page: Vec<(u64, UserStatus)> = iter
            .by_ref()
            .take(top)
            .map(|(s, u)| (*s, u.clone()))
            .collect();
        let more = iter.next().is_some();
        let next = match (more, page.last()) {
            (true, Some((seq, _))) => Some(*seq),
            // `$top=0` with data left: continue from where we are.
            (true, None) => Some(after),
            _ => None,
        };
        (page.into_iter().map(|(_, u)| u).collect(), next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_in_insertion_order_across_deletes() {
        let key = CollectionKey {
            route: 1,
            ids: vec!["c".into()],
        };
        let mut store = Store::default();
        for id in ["b", "a", "c"] {
            store
                .insert(&key, UserStatus::with_defaults(id.into()))
                .unwrap();
        }
        assert!(
            store
                .insert(&key, UserStatus::with_defaults("a".into()))
                .is_err()
        );
        let (page, next) = store.page(&key, 0, 2, |_| true);
        assert_eq!(
            page.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert!(store.remove(&key, "b"));
        let (page, next) = store.page(&key, next.unwrap(), 2, |_| true);
        assert_eq!(
            page.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
            ["c"]
        );
        assert_eq!(next, None);
    }
}
