//! A session's cursor per joined room, as a short list.
//!
//! A session is in one room or a few (`max_rooms_per_session` at most), and
//! every connection keeps its cursors for its whole life: a hash map would
//! give each one a table of at least four slots; a list holds exactly its
//! rooms and finds one by pointer (the fan-out passes the feed's own room
//! id) before comparing text.

use std::sync::Arc;

use crate::cursor::Cursor;

/// Room id → cursor.
#[derive(Debug, Default)]
pub(crate) struct RoomCursors {
    entries: Vec<(Arc<str>, Cursor)>,
}

/// The same room id: the same allocation, or equal text.
fn same(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || a == b
}

impl RoomCursors {
    fn position(&self, room: &str) -> Option<usize> {
        self.entries.iter().position(|(r, _)| same(r, room))
    }

    pub(crate) fn get(&self, room: &str) -> Option<&Cursor> {
        self.entries
            .iter()
            .find(|(r, _)| same(r, room))
            .map(|(_, c)| c)
    }

    pub(crate) fn get_mut(&mut self, room: &str) -> Option<&mut Cursor> {
        self.entries
            .iter_mut()
            .find(|(r, _)| same(r, room))
            .map(|(_, c)| c)
    }

    pub(crate) fn contains_key(&self, room: &str) -> bool {
        self.position(room).is_some()
    }

    /// Set the room's cursor; the one it replaces, if any.
    pub(crate) fn insert(&mut self, room: Arc<str>, cursor: Cursor) -> Option<Cursor> {
        if let Some(known) = self.get_mut(&room) {
            return Some(std::mem::replace(known, cursor));
        }
        // Room for exactly one more: a first push would reserve four.
        self.entries.reserve_exact(1);
        self.entries.push((room, cursor));
        None
    }

    pub(crate) fn remove_entry(&mut self, room: &str) -> Option<(Arc<str>, Cursor)> {
        let at = self.position(room)?;
        let entry = self.entries.swap_remove(at);
        if self.entries.is_empty() {
            self.entries = Vec::new();
        }
        Some(entry)
    }

    pub(crate) fn remove(&mut self, room: &str) -> Option<Cursor> {
        self.remove_entry(room).map(|(_, c)| c)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &Cursor)> {
        self.entries.iter().map(|(r, c)| (r, c))
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn clear(&mut self) {
        self.entries = Vec::new();
    }
}

impl IntoIterator for RoomCursors {
    type Item = (Arc<str>, Cursor);
    type IntoIter = std::vec::IntoIter<(Arc<str>, Cursor)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<const N: usize> From<[(Arc<str>, Cursor); N]> for RoomCursors {
    fn from(entries: [(Arc<str>, Cursor); N]) -> Self {
        let mut rooms = Self::default();
        for (room, cursor) in entries {
            rooms.insert(room, cursor);
        }
        rooms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_map_of_rooms() {
        let mut rooms = RoomCursors::default();
        assert_eq!(rooms.insert(Arc::from("a"), Cursor::new(1, 5)), None);
        assert_eq!(rooms.insert(Arc::from("b"), Cursor::new(2, 7)), None);
        let old = rooms.insert(Arc::from("a"), Cursor::new(1, 9));
        assert_eq!(old, Some(Cursor::new(1, 5)), "the replaced cursor");
        assert_eq!(rooms.len(), 2, "a room is held once");
        assert_eq!(rooms.get("a"), Some(&Cursor::new(1, 9)));
        // Found by text as well as by the same allocation.
        let b: Arc<str> = Arc::from(String::from("b"));
        assert!(rooms.contains_key(&b));
        if let Some(c) = rooms.get_mut("b") {
            c.seq = 8;
        }
        assert_eq!(rooms.remove("b"), Some(Cursor::new(2, 8)));
        assert_eq!(rooms.remove("b"), None);
        assert!(!rooms.contains_key("b"));
        let (room, cursor) = rooms.remove_entry("a").expect("a is in");
        assert_eq!((&*room, cursor), ("a", Cursor::new(1, 9)));
        assert_eq!(rooms.len(), 0);
        assert_eq!(rooms.entries.capacity(), 0, "an empty list holds no memory");
    }

    #[test]
    fn one_room_takes_one_slot() {
        let rooms = RoomCursors::from([(Arc::from("a"), Cursor::new(1, 0))]);
        assert_eq!(rooms.entries.capacity(), 1);
        let all: Vec<(Arc<str>, Cursor)> = rooms.into_iter().collect();
        assert_eq!(all.len(), 1);
    }
}
