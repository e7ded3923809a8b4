//! A [`RoomStore`] that counts the operations it forwards, by method, so the
//! cost of a workload in store round trips is visible (room-biz exports it as
//! `roomcast_biz_store_ops_total`).

use std::sync::Arc;

use prometheus::IntCounterVec;

use super::engine::{
    AudienceSet, CounterBatch, MemberEntry, MemberFilter, NewRoom, Room, RoomAnalytics, RoomLists,
    RoomStore, SessionLeft,
};
use super::ledger::Ledger;
use crate::domain::state::{Counters, RoomRead};
use crate::domain::transition::{Applied, Transition};
use crate::error::StoreError;

/// Counts every call to `inner` in `ops{op}`.
pub struct Metered {
    inner: Arc<dyn RoomStore>,
    ops: IntCounterVec,
}

impl Metered {
    /// Wrap `inner`.
    pub fn new(inner: Arc<dyn RoomStore>, ops: IntCounterVec) -> Self {
        Self { inner, ops }
    }

    fn count(&self, op: &str) {
        self.ops.with_label_values(&[op]).inc();
    }
}

#[async_trait::async_trait]
impl RoomStore for Metered {
    async fn create_room(&self, new: NewRoom) -> Result<Room, StoreError> {
        self.count("create_room");
        self.inner.create_room(new).await
    }

    async fn get_room(&self, id: &str) -> Result<Option<Room>, StoreError> {
        self.count("get_room");
        self.inner.get_room(id).await
    }

    async fn end_room(&self, id: &str) -> Result<Option<Room>, StoreError> {
        self.count("end_room");
        self.inner.end_room(id).await
    }

    async fn delete_room(&self, id: &str) -> Result<bool, StoreError> {
        self.count("delete_room");
        self.inner.delete_room(id).await
    }

    async fn member_joined(
        &self,
        room: &str,
        uid: &str,
        session_id: &str,
        node_id: &str,
    ) -> Result<u32, StoreError> {
        self.count("member_joined");
        self.inner
            .member_joined(room, uid, session_id, node_id)
            .await
    }

    async fn member_left(
        &self,
        room: &str,
        uid: &str,
        session_id: &str,
    ) -> Result<u32, StoreError> {
        self.count("member_left");
        self.inner.member_left(room, uid, session_id).await
    }

    async fn member_session_left(
        &self,
        room: &str,
        uid: &str,
        session_id: &str,
    ) -> Result<SessionLeft, StoreError> {
        self.count("member_left");
        self.inner.member_session_left(room, uid, session_id).await
    }

    async fn member_count(&self, room: &str) -> Result<u32, StoreError> {
        self.count("member_count");
        self.inner.member_count(room).await
    }

    async fn remove_node(&self, node_id: &str) -> Result<Vec<(String, u32)>, StoreError> {
        self.count("remove_node");
        self.inner.remove_node(node_id).await
    }

    async fn apply(&self, room: &str, t: &Transition) -> Result<Applied, StoreError> {
        self.count("apply");
        self.inner.apply(room, t).await
    }

    async fn read(
        &self,
        room: &str,
        viewer: Option<&str>,
        hands_max: usize,
    ) -> Result<Option<RoomRead>, StoreError> {
        self.count("read");
        self.inner.read(room, viewer, hands_max).await
    }

    async fn add_counters(
        &self,
        room: &str,
        deltas: &[(String, u64)],
        batch: Option<CounterBatch<'_>>,
    ) -> Result<Option<Counters>, StoreError> {
        self.count("add_counters");
        self.inner.add_counters(room, deltas, batch).await
    }

    async fn analytics(&self, room: &str) -> Result<RoomAnalytics, StoreError> {
        self.count("analytics");
        self.inner.analytics(room).await
    }

    async fn slow_comment(
        &self,
        room: &str,
        uid: &str,
        secs: u32,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.count("slow_comment");
        self.inner.slow_comment(room, uid, secs, now_ms).await
    }

    async fn members_page(
        &self,
        room: &str,
        filter: MemberFilter,
        after: Option<&MemberEntry>,
        limit: usize,
    ) -> Result<Vec<MemberEntry>, StoreError> {
        self.count("members_page");
        self.inner.members_page(room, filter, after, limit).await
    }

    async fn audience_page(
        &self,
        room: &str,
        set: AudienceSet,
        cursor: u64,
        count: usize,
    ) -> Result<(u64, Vec<String>), StoreError> {
        self.count("audience_page");
        self.inner.audience_page(room, set, cursor, count).await
    }

    async fn room_lists(&self, room: &str) -> Result<RoomLists, StoreError> {
        self.count("room_lists");
        self.inner.room_lists(room).await
    }

    async fn set_blocked(&self, host: &str, uid: &str, blocked: bool) -> Result<(), StoreError> {
        self.count("set_blocked");
        self.inner.set_blocked(host, uid, blocked).await
    }

    async fn is_blocked(&self, host: &str, uid: &str) -> Result<bool, StoreError> {
        self.count("is_blocked");
        self.inner.is_blocked(host, uid).await
    }

    async fn blocked_by(&self, host: &str) -> Result<Vec<String>, StoreError> {
        self.count("blocked_by");
        self.inner.blocked_by(host).await
    }

    async fn revoke_tokens(
        &self,
        uid: &str,
        before_secs: u64,
        ttl_secs: u64,
    ) -> Result<(), StoreError> {
        self.count("revoke_tokens");
        self.inner.revoke_tokens(uid, before_secs, ttl_secs).await
    }

    async fn tokens_revoked_before(&self, uid: &str) -> Result<Option<u64>, StoreError> {
        self.count("tokens_revoked_before");
        self.inner.tokens_revoked_before(uid).await
    }

    fn ledger(&self) -> Arc<dyn Ledger> {
        self.inner.ledger()
    }
}
