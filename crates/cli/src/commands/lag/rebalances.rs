//! Counting a group's rebalances from the outside, as `sluice lag serve` sees them.
//!
//! DescribeGroups does not return a classic group's generation, so an admin cannot read
//! how many rebalances happened. What it can see, look after look, is the group's state
//! and who owns what: a rebalance is counted when the group enters
//! `PreparingRebalance` / `CompletingRebalance`, or when its members or their
//! assignments changed between two looks that both saw it settled (the rebalance fell
//! between them). Several rebalances inside one interval count as one: the counter is a
//! lower bound, exact only when rebalances are further apart than the interval.

use std::collections::BTreeSet;

use sluice_wire::admin::GroupDescription;
use sluice_wire::types::TopicPartition;

/// Who owned which partition at one look: member ids with their assignments.
type Membership = BTreeSet<(String, Vec<String>)>;

/// One group's rebalances seen so far; fed one look at a time.
#[derive(Debug, Default)]
pub(super) struct RebalanceCounter {
    /// The previous look: whether the group was rebalancing, and its membership.
    last: Option<(bool, Membership)>,
    seen: u64,
}

impl RebalanceCounter {
    /// Takes one look at the group; returns the rebalances seen so far.
    pub(super) fn observe(&mut self, group: &GroupDescription) -> u64 {
        let members = group
            .members
            .iter()
            .map(|m| (m.member_id.as_str(), m.assignment.as_slice()));
        self.observe_parts(&group.state, members)
    }

    /// [`observe`](Self::observe) from the group's state and its members' ids and
    /// assignments.
    fn observe_parts<'a>(
        &mut self,
        state: &str,
        members: impl Iterator<Item = (&'a str, &'a [TopicPartition])>,
    ) -> u64 {
        let rebalancing = matches!(state, "PreparingRebalance" | "CompletingRebalance");
        let membership: Membership = members
            .map(|(id, assignment)| {
                let owned = assignment.iter().map(ToString::to_string).collect();
                (id.to_string(), owned)
            })
            .collect();
        if let Some((was_rebalancing, before)) = &self.last {
            let entered = rebalancing && !was_rebalancing;
            let between = !rebalancing && !was_rebalancing && *before != membership;
            if entered || between {
                self.seen += 1;
            }
        }
        self.last = Some((rebalancing, membership));
        self.seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One look: the state and each member's partitions of topic `t`.
    fn look(counter: &mut RebalanceCounter, state: &str, members: &[(&str, &[i32])]) -> u64 {
        let owned: Vec<(&str, Vec<TopicPartition>)> = members
            .iter()
            .map(|(id, parts)| {
                (
                    *id,
                    parts.iter().map(|p| TopicPartition::new("t", *p)).collect(),
                )
            })
            .collect();
        counter.observe_parts(state, owned.iter().map(|(id, a)| (*id, a.as_slice())))
    }

    #[test]
    fn counts_entering_a_rebalance_and_changes_between_looks() {
        let c = &mut RebalanceCounter::default();
        // The first look is the baseline, whatever it shows.
        assert_eq!(look(c, "Stable", &[("a", &[0, 1])]), 0);
        assert_eq!(look(c, "Stable", &[("a", &[0, 1])]), 0);
        // Seen mid-rebalance, then settled with a new member: one rebalance.
        assert_eq!(look(c, "PreparingRebalance", &[("a", &[0, 1])]), 1);
        assert_eq!(look(c, "CompletingRebalance", &[("a", &[0, 1])]), 1);
        assert_eq!(look(c, "Stable", &[("a", &[0]), ("b", &[1])]), 1);
        // Unseen rebalance: the assignment moved between two settled looks.
        assert_eq!(look(c, "Stable", &[("a", &[1]), ("b", &[0])]), 2);
        // Everyone left: the group rebalanced to empty.
        assert_eq!(look(c, "Empty", &[]), 3);
        assert_eq!(look(c, "Empty", &[]), 3);
    }
}
