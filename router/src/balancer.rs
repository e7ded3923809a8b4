//! Choosing the conn node for a long connection. Pure, sans-IO: the random
//! source and the clock are parameters so tests are deterministic.
//!
//! # Layout
//! - [`choose`]: live, not draining, same zone first, then power of two
//!   random choices on the load a node reported plus the clients handed to
//!   it since ([`HandOuts`]).
//! - [`HandOuts`]: routes handed out recently that the node's reported load
//!   may not show yet.
//! - [`takes_clients`]: whether a node can be handed out at all.
//!
//! Power of two choices rather than "the least loaded": every router sees
//! loads that are a few seconds old, and all of them sending every new client
//! to the same "least loaded" node would overload it before its next report.
//! Two random candidates and the less loaded of them spreads the herd while
//! still steering away from busy nodes.
//!
//! A burst is the case reports cannot see at all: a hundred clients routed
//! within one report interval would all find the same loads. So the router
//! counts its own hand-outs in flight and adds them to the reported load,
//! and equal loads are broken at random (never by id, which would send every
//! tie to the same node).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use common::discovery::NodeInfo;
use proto::transport::Transport;
use rand::Rng;

/// How long a hand-out counts if the node's reports never show it (the client
/// gave up, or went to another node): a few load reports (conn nodes report
/// every 2 s).
pub(crate) const HAND_OUT_DECAY: Duration = Duration::from_secs(6);

/// A node the router may hand out: not draining, with a client endpoint.
/// (Nodes in discovery are live: a dead node's lease expires.)
pub(crate) fn takes_clients(node: &NodeInfo) -> bool {
    !node.draining
        && Transport::LONG
            .iter()
            .any(|t| node.endpoints.contains_key(t.as_str()))
}

/// Routes handed out per node that its reported load may not include yet.
///
/// A hand-out stops counting when the node's report grows past the load it
/// reported when the hand-out was made (the client arrived: the oldest
/// hand-outs go first, one per new connection), or after [`HAND_OUT_DECAY`].
#[derive(Debug, Default)]
pub(crate) struct HandOuts {
    nodes: HashMap<String, Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    /// The connections the node reported when last looked at.
    reported: u64,
    /// When each counted hand-out was made, oldest first.
    at: VecDeque<Instant>,
}

impl Pending {
    /// Forget hand-outs that a newer report covers or that are too old.
    fn settle(&mut self, reported: u64, now: Instant) {
        if reported > self.reported {
            let arrived = usize::try_from(reported - self.reported).unwrap_or(usize::MAX);
            self.at.drain(..arrived.min(self.at.len()));
        }
        self.reported = reported;
        while self
            .at
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= HAND_OUT_DECAY)
        {
            self.at.pop_front();
        }
    }
}

impl HandOuts {
    /// The node's load as far as this router knows: reported connections
    /// plus the hand-outs its reports do not show yet.
    pub(crate) fn load(&mut self, node: &NodeInfo, now: Instant) -> u64 {
        let pending = self.nodes.entry(node.id.clone()).or_default();
        pending.settle(node.connections, now);
        node.connections.saturating_add(pending.at.len() as u64)
    }

    /// A client was just handed `node`.
    pub(crate) fn record(&mut self, node: &NodeInfo, now: Instant) {
        let pending = self.nodes.entry(node.id.clone()).or_default();
        pending.settle(node.connections, now);
        pending.at.push_back(now);
    }

    /// Forget nodes that left discovery (their ids are not in `live`).
    pub(crate) fn retain_live(&mut self, live: &[NodeInfo]) {
        self.nodes.retain(|id, _| live.iter().any(|n| &n.id == id));
    }
}

/// What a choice draws on besides the nodes: the randomness, the clock and
/// the hand-outs in flight (the choice is counted there).
pub(crate) struct Picker<'a, R: Rng + ?Sized> {
    pub(crate) hand_outs: &'a mut HandOuts,
    pub(crate) now: Instant,
    pub(crate) rng: &'a mut R,
}

/// The conn node for a client in `zone` (empty or `None`: no preference),
/// counted in the picker's hand-outs.
///
/// Candidates are the nodes that take clients in `zone`, or in every zone when
/// none there does. Of two distinct random candidates the one with the lower
/// load (reported connections plus hand-outs in flight) wins; equal loads go
/// to the first drawn, which is itself random.
pub(crate) fn choose<'a, R: Rng + ?Sized>(
    conns: &'a [NodeInfo],
    zone: Option<&str>,
    picker: &mut Picker<'_, R>,
) -> Option<&'a NodeInfo> {
    let Picker {
        hand_outs,
        now,
        rng,
    } = picker;
    let now = *now;
    let usable: Vec<&NodeInfo> = conns.iter().filter(|n| takes_clients(n)).collect();
    let local: Vec<&NodeInfo> = match zone.filter(|z| !z.is_empty()) {
        Some(zone) => usable.iter().copied().filter(|n| n.zone == zone).collect(),
        None => Vec::new(),
    };
    let candidates = if local.is_empty() { usable } else { local };
    let chosen = match candidates.len() {
        0 => return None,
        1 => candidates[0],
        n => {
            let first = rng.random_range(0..n);
            // A second index distinct from the first, uniformly.
            let mut second = rng.random_range(0..n - 1);
            if second >= first {
                second += 1;
            }
            let (a, b) = (candidates[first], candidates[second]);
            if hand_outs.load(b, now) < hand_outs.load(a, now) {
                b
            } else {
                a
            }
        }
    };
    hand_outs.record(chosen, now);
    Some(chosen)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use rand::SeedableRng as _;
    use rand::rngs::StdRng;

    use super::*;

    fn conn(id: &str, zone: &str, connections: u64, draining: bool) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            endpoints: BTreeMap::from([("ws".to_owned(), format!("ws://{id}/v1/ws"))]),
            zone: zone.into(),
            connections,
            draining,
            ..NodeInfo::default()
        }
    }

    /// How often each node is chosen over `draws`, each draw as if it were
    /// the router's first (no hand-outs in flight): the reported loads alone.
    fn tally(conns: &[NodeInfo], zone: Option<&str>, draws: usize) -> HashMap<String, usize> {
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts = HashMap::new();
        let now = Instant::now();
        for _ in 0..draws {
            let mut picker = Picker {
                hand_outs: &mut HandOuts::default(),
                now,
                rng: &mut rng,
            };
            if let Some(n) = choose(conns, zone, &mut picker) {
                *counts.entry(n.id.clone()).or_default() += 1;
            }
        }
        counts
    }

    #[test]
    fn draining_and_endpointless_nodes_are_never_chosen() {
        let mut bare = conn("bare", "", 0, false);
        bare.endpoints.clear();
        let mut quic_only = conn("quic-only", "", 500, false);
        quic_only.endpoints = BTreeMap::from([("quic".into(), "quic://q:8604".into())]);
        let mut conns = vec![
            conn("draining", "", 0, true),
            bare,
            quic_only,
            conn("ws", "", 400, false),
        ];
        // The idle draining and endpointless nodes lose to busier usable ones.
        assert_eq!(tally(&conns, None, 1000).get("ws"), Some(&1000));
        conns.pop();
        // A QUIC endpoint alone makes a node usable.
        assert_eq!(tally(&conns, None, 1000).get("quic-only"), Some(&1000));
        let all_draining = [conn("a", "", 0, true), conn("b", "", 0, true)];
        assert_eq!(tally(&all_draining, None, 10).len(), 0);
        let mut picker = Picker {
            hand_outs: &mut HandOuts::default(),
            now: Instant::now(),
            rng: &mut StdRng::seed_from_u64(1),
        };
        assert!(choose(&[], Some("z"), &mut picker).is_none());
    }

    #[test]
    fn the_clients_zone_comes_first_with_a_fallback_to_any_zone() {
        let conns = [
            conn("east-1", "east", 900, false),
            conn("east-2", "east", 800, false),
            conn("west-1", "west", 0, false),
            conn("west-2", "west", 1, true),
        ];
        let east = tally(&conns, Some("east"), 1000);
        assert_eq!(east.keys().filter(|k| k.starts_with("east")).count(), 1);
        assert_eq!(
            east.get("east-2"),
            Some(&1000),
            "less loaded of the two: {east:?}"
        );
        // Nothing usable in the zone (west-2 drains, no node in "north").
        let conns = [
            conn("east-1", "east", 900, false),
            conn("west-2", "west", 1, true),
        ];
        assert_eq!(tally(&conns, Some("west"), 100).get("east-1"), Some(&100));
        assert_eq!(tally(&conns, Some("north"), 100).get("east-1"), Some(&100));
        // No zone given: every zone.
        let conns = [
            conn("east-1", "east", 5, false),
            conn("west-1", "west", 1, false),
        ];
        assert_eq!(tally(&conns, None, 100).get("west-1"), Some(&100));
        assert_eq!(tally(&conns, Some(""), 100).get("west-1"), Some(&100));
    }

    #[test]
    fn p2c_never_picks_the_worse_of_two_and_never_the_most_loaded() {
        // Two candidates: always the less loaded one.
        let two = [conn("busy", "", 100, false), conn("quiet", "", 10, false)];
        assert_eq!(tally(&two, None, 1000).get("quiet"), Some(&1000));
        // Ties are broken at random, not by id.
        let tie = [conn("b", "", 3, false), conn("a", "", 3, false)];
        let counts = tally(&tie, None, 1000);
        assert!(
            counts.values().all(|c| (400..600).contains(c)),
            "{counts:?}"
        );

        // Several: the most loaded can never win a pair; the least loaded wins
        // every pair it is in (2/n of draws), more than any other node.
        let loads = [50, 10, 30, 90, 70];
        let conns: Vec<NodeInfo> = loads
            .iter()
            .enumerate()
            .map(|(i, c)| conn(&format!("n{i}"), "", *c, false))
            .collect();
        let counts = tally(&conns, None, 10_000);
        assert_eq!(counts.get("n3"), None, "most loaded chosen: {counts:?}");
        let least = counts.get("n1").copied().unwrap_or_default();
        assert!(counts.values().all(|c| *c <= least), "{counts:?}");
        // 2/5 of the pairs contain n1: about 4,000 of 10,000.
        assert!((3600..4400).contains(&least), "{counts:?}");
        // The second least loaded wins only against the three above it: 3/10.
        let second = counts.get("n2").copied().unwrap_or_default();
        assert!((2600..3400).contains(&second), "{counts:?}");
    }

    #[test]
    fn one_candidate_is_chosen_without_a_draw() {
        let conns = [conn("only", "", 1_000_000, false), conn("d", "", 0, true)];
        assert_eq!(tally(&conns, None, 10).get("only"), Some(&10));
    }

    #[test]
    fn a_burst_is_spread_over_idle_nodes_by_counting_hand_outs() {
        let conns = [conn("a", "", 0, false), conn("b", "", 0, false)];
        let mut picker = Picker {
            hand_outs: &mut HandOuts::default(),
            now: Instant::now(),
            rng: &mut StdRng::seed_from_u64(11),
        };
        let mut counts: HashMap<String, usize> = HashMap::new();
        for _ in 0..100 {
            let n = choose(&conns, None, &mut picker).expect("a node");
            *counts.entry(n.id.clone()).or_default() += 1;
        }
        // Each pick sees the other's hand-outs: the split stays within one.
        assert!(counts.values().all(|c| (49..=51).contains(c)), "{counts:?}");
    }

    #[test]
    fn hand_outs_stop_counting_when_reported_or_old() {
        let idle = conn("a", "", 0, false);
        let mut hand_outs = HandOuts::default();
        let now = Instant::now();
        for _ in 0..5 {
            hand_outs.record(&idle, now);
        }
        assert_eq!(hand_outs.load(&idle, now), 5);
        // Three of the clients arrived and were reported: two still in flight.
        let reported = conn("a", "", 3, false);
        assert_eq!(hand_outs.load(&reported, now), 5);
        // Connections closing do not bring hand-outs back.
        let fewer = conn("a", "", 1, false);
        assert_eq!(hand_outs.load(&fewer, now), 3);
        // The rest never arrived: they decay.
        let later = now + HAND_OUT_DECAY;
        assert_eq!(hand_outs.load(&fewer, later), 1);
        hand_outs.retain_live(&[]);
        assert!(hand_outs.nodes.is_empty());
    }
}
