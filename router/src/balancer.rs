//! Choosing the conn node for a long connection. Pure, sans-IO: the random
//! source is a parameter so tests are deterministic.
//!
//! # Layout
//! - [`choose`]: live, not draining, same zone first, then power of two
//!   random choices on reported connections.
//! - [`takes_clients`]: whether a node can be handed out at all.
//!
//! Power of two choices rather than "the least loaded": every router sees
//! loads that are a few seconds old, and all of them sending every new client
//! to the same "least loaded" node would overload it before its next report.
//! Two random candidates and the less loaded of them spreads the herd while
//! still steering away from busy nodes.

use common::discovery::NodeInfo;
use proto::transport::Transport;
use rand::Rng;

/// A node the router may hand out: not draining, with a client endpoint.
/// (Nodes in discovery are live: a dead node's lease expires.)
pub(crate) fn takes_clients(node: &NodeInfo) -> bool {
    !node.draining
        && Transport::LONG
            .iter()
            .any(|t| node.endpoints.contains_key(t.as_str()))
}

/// The conn node for a client in `zone` (empty or `None`: no preference).
///
/// Candidates are the nodes that take clients in `zone`, or in every zone when
/// none there does. Of two distinct random candidates the one with fewer
/// connections wins (ties: the lower id, so equal loads do not depend on the
/// draw order).
pub(crate) fn choose<'a, R: Rng + ?Sized>(
    conns: &'a [NodeInfo],
    zone: Option<&str>,
    rng: &mut R,
) -> Option<&'a NodeInfo> {
    let usable: Vec<&NodeInfo> = conns.iter().filter(|n| takes_clients(n)).collect();
    let local: Vec<&NodeInfo> = match zone.filter(|z| !z.is_empty()) {
        Some(zone) => usable.iter().copied().filter(|n| n.zone == zone).collect(),
        None => Vec::new(),
    };
    let candidates = if local.is_empty() { usable } else { local };
    match candidates.len() {
        0 => None,
        1 => Some(candidates[0]),
        n => {
            let first = rng.random_range(0..n);
            // A second index distinct from the first, uniformly.
            let mut second = rng.random_range(0..n - 1);
            if second >= first {
                second += 1;
            }
            Some(less_loaded(candidates[first], candidates[second]))
        }
    }
}

fn less_loaded<'a>(a: &'a NodeInfo, b: &'a NodeInfo) -> &'a NodeInfo {
    if (a.connections, &a.id) <= (b.connections, &b.id) {
        a
    } else {
        b
    }
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

    /// How often each node is chosen over `draws`.
    fn tally(conns: &[NodeInfo], zone: Option<&str>, draws: usize) -> HashMap<String, usize> {
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts = HashMap::new();
        for _ in 0..draws {
            if let Some(n) = choose(conns, zone, &mut rng) {
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
        assert!(choose(&[], Some("z"), &mut StdRng::seed_from_u64(1)).is_none());
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
        // Ties go to the lower id.
        let tie = [conn("b", "", 3, false), conn("a", "", 3, false)];
        assert_eq!(tally(&tie, None, 100).get("a"), Some(&100));

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
}
