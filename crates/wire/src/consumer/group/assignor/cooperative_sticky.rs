//! `cooperative-sticky` (Java's `CooperativeStickyAssignor`, KIP-429): a balanced
//! assignment that leaves every partition with its current owner when it can, and never
//! hands a partition straight from one member to another. A partition that must move is
//! left out of this round: its owner sees it missing, revokes it and rejoins, and the
//! next round (the follow-up rebalance) gives it to its new member. So during a rebalance
//! members keep consuming the partitions they keep.
//!
//! Balancing is greedy rather than Java's exact algorithm: owners keep their valid
//! partitions, free partitions go to the eligible member with the fewest, then partitions
//! move from the fullest member to an eligible emptier one until no member has two more
//! than another it could give to. With equal subscriptions that is the same balance
//! (counts differ by at most one) Java reaches, with as few moves.

use std::collections::{BTreeMap, BTreeSet};

use super::{Assignment, Member};
use crate::consumer::TopicPartition;

pub(super) fn assign(members: &[&Member], topics: &BTreeMap<String, i32>) -> Assignment {
    let eligible = |m: &Member, tp: &TopicPartition| m.subscription.topics.contains(&tp.topic);
    let all: Vec<TopicPartition> = topics
        .iter()
        .filter(|(t, _)| members.iter().any(|m| m.subscription.topics.contains(t)))
        .flat_map(|(t, &n)| (0..n).map(move |p| TopicPartition::new(t.clone(), p)))
        .collect();
    let exists: BTreeSet<&TopicPartition> = all.iter().collect();

    // Who owns what now: the claim of the highest generation wins; a tie is nobody's.
    let mut claims: BTreeMap<TopicPartition, (i32, Option<usize>)> = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        for tp in &m.subscription.owned {
            if !exists.contains(tp) || !eligible(m, tp) {
                continue;
            }
            let generation = m.subscription.generation;
            match claims.get_mut(tp) {
                None => {
                    claims.insert(tp.clone(), (generation, Some(i)));
                }
                Some(c) if generation > c.0 => *c = (generation, Some(i)),
                Some(c) if generation == c.0 => c.1 = None,
                Some(_) => {}
            }
        }
    }
    let owner: BTreeMap<&TopicPartition, usize> = claims
        .iter()
        .filter_map(|(tp, (_, who))| who.map(|w| (tp, w)))
        .collect();

    let mut held: Vec<Vec<TopicPartition>> = vec![Vec::new(); members.len()];
    for (tp, &w) in &owner {
        held[w].push((*tp).clone());
    }
    for tp in all.iter().filter(|tp| !owner.contains_key(tp)) {
        let target = (0..members.len())
            .filter(|&i| eligible(members[i], tp))
            .min_by_key(|&i| held[i].len());
        if let Some(i) = target {
            held[i].push(tp.clone());
        }
    }
    // Move from the fullest to an eligible member with at least two fewer.
    loop {
        let mut moved = false;
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(held[i].len()));
        'from: for &from in &order {
            for k in (0..held[from].len()).rev() {
                let tp = &held[from][k];
                let to = (0..members.len())
                    .filter(|&j| j != from && eligible(members[j], tp))
                    .filter(|&j| held[j].len() + 1 < held[from].len())
                    .min_by_key(|&j| held[j].len());
                if let Some(to) = to {
                    let tp = held[from].remove(k);
                    held[to].push(tp);
                    moved = true;
                    break 'from;
                }
            }
        }
        if !moved {
            break;
        }
    }

    // Cooperative: a partition owned by someone else is not given away yet.
    let mut out = Assignment::new();
    for (i, m) in members.iter().enumerate() {
        let parts = held[i]
            .iter()
            .filter(|tp| owner.get(tp).is_none_or(|&w| w == i))
            .cloned()
            .collect();
        out.insert(m.member_id.clone(), parts);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check_complete, member};
    use super::super::{assign, AssignmentStrategy};
    use std::collections::BTreeMap;

    #[test]
    fn a_new_member_takes_partitions_only_after_their_owner_gives_them_up() {
        let topics: BTreeMap<String, i32> = [("t".to_string(), 6)].into();
        let six: Vec<(&str, i32)> = (0..6).map(|p| ("t", p)).collect();
        // m1 owns everything; m2 joins.
        let members = vec![member("m1", &["t"], &six), member("m2", &["t"], &[])];
        let round1 = assign(AssignmentStrategy::CooperativeSticky, &members, &topics);
        // m1 keeps three, m2 gets nothing yet: the other three are in flight.
        assert_eq!(round1["m1"].len(), 3);
        assert!(round1["m2"].is_empty());
        // m1 revoked three and rejoins; now m2 gets them, m1 keeps its three.
        let kept: Vec<(&str, i32)> = round1["m1"].iter().map(|tp| ("t", tp.partition)).collect();
        let members = vec![member("m1", &["t"], &kept), member("m2", &["t"], &[])];
        let round2 = assign(AssignmentStrategy::CooperativeSticky, &members, &topics);
        assert_eq!(round2["m1"], round1["m1"]);
        assert_eq!(round2["m2"].len(), 3);
        check_complete(&round2, &members, &topics);
    }

    #[test]
    fn a_leaving_member_s_partitions_spread_without_moving_others() {
        let topics: BTreeMap<String, i32> = [("t".to_string(), 6)].into();
        let members = vec![
            member("a", &["t"], &[("t", 0), ("t", 1)]),
            member("b", &["t"], &[("t", 2), ("t", 3)]),
        ];
        let a = assign(AssignmentStrategy::CooperativeSticky, &members, &topics);
        check_complete(&a, &members, &topics);
        assert!(
            a["a"].iter().any(|tp| tp.partition == 0) && a["a"].iter().any(|tp| tp.partition == 1)
        );
        assert!(
            a["b"].iter().any(|tp| tp.partition == 2) && a["b"].iter().any(|tp| tp.partition == 3)
        );
        assert_eq!(a["a"].len(), 3);
    }
}
