//! Stable hashes: the same answer in every process and every build, which
//! `std`'s `DefaultHasher` does not promise.

/// 64-bit FNV-1a followed by a splitmix64 finaliser for good avalanche.
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separator so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    splitmix64(h)
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Rendezvous (highest random weight) choice of the node owning `key`.
///
/// Adding or removing a node moves only the keys that node wins or held.
pub fn rendezvous_owner<'a, I>(key: &str, nodes: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    nodes
        .into_iter()
        .max_by_key(|node| (stable_hash(&[node.as_bytes(), key.as_bytes()]), *node))
}

/// Every node in rendezvous order for `key`: the owner first, then the node
/// that would own `key` without it, and so on.
pub fn rendezvous_order<'a, I>(key: &str, nodes: I) -> Vec<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut ranked: Vec<(u64, &'a str)> = nodes
        .into_iter()
        .map(|node| (stable_hash(&[node.as_bytes(), key.as_bytes()]), node))
        .collect();
    // Highest weight first, ties by id as in `rendezvous_owner`.
    ranked.sort_unstable_by(|a, b| b.cmp(a));
    ranked.into_iter().map(|(_, node)| node).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_moves_only_keys_of_the_removed_node() {
        let three = ["a", "b", "c"];
        let two = ["a", "b"];
        for i in 0..1000 {
            let key = format!("room-{i}");
            let before = rendezvous_owner(&key, three.iter().copied()).expect("owner");
            let after = rendezvous_owner(&key, two.iter().copied()).expect("owner");
            if before != "c" {
                assert_eq!(before, after, "{key} moved although its owner stayed");
            }
        }
    }

    #[test]
    fn rendezvous_spreads_keys() {
        let nodes = ["n1", "n2", "n3", "n4"];
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            let owner = rendezvous_owner(&format!("k{i}"), nodes.iter().copied()).expect("owner");
            let idx = nodes.iter().position(|n| *n == owner).expect("known");
            counts[idx] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "uneven spread {counts:?}");
        }
    }

    #[test]
    fn hash_is_stable() {
        assert_eq!(stable_hash(&[b"roomcast"]), stable_hash(&[b"roomcast"]));
        assert_ne!(stable_hash(&[b"ab", b"c"]), stable_hash(&[b"a", b"bc"]));
    }

    #[test]
    fn rendezvous_order_lists_each_next_owner() {
        let three = ["a", "b", "c"];
        for i in 0..200 {
            let key = format!("room-{i}");
            let order = rendezvous_order(&key, three.iter().copied());
            assert_eq!(order.len(), 3);
            assert_eq!(
                Some(order[0]),
                rendezvous_owner(&key, three.iter().copied())
            );
            // Without the owner, the second in order owns the key.
            let rest = three.iter().copied().filter(|n| *n != order[0]);
            assert_eq!(Some(order[1]), rendezvous_owner(&key, rest));
        }
    }
}
