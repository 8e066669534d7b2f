//! Partition assignors, run by the group leader: `range`, `roundrobin` and
//! `cooperative-sticky`, with Java's semantics so a mixed Sluice / Java group agrees.

mod cooperative_sticky;
mod range;
mod round_robin;

use std::collections::BTreeMap;

use crate::cluster::consumer_protocol::Subscription;
use crate::consumer::config::AssignmentStrategy;
use crate::consumer::TopicPartition;

/// One member as the leader sees it.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) subscription: Subscription,
}

impl Member {
    /// Java sorts members by group instance id when they have one, else by member id.
    fn sort_key(&self) -> (&str, &str) {
        match &self.group_instance_id {
            Some(id) => ("", id.as_str()),
            None => ("~", self.member_id.as_str()),
        }
    }
}

/// Partitions per member id.
pub(crate) type Assignment = BTreeMap<String, Vec<TopicPartition>>;

/// Assigns the partitions of `topics` (name -> partition count) to `members`. Every
/// member gets an entry, possibly empty.
pub(crate) fn assign(
    strategy: AssignmentStrategy,
    members: &[Member],
    topics: &BTreeMap<String, i32>,
) -> Assignment {
    let mut sorted: Vec<&Member> = members.iter().collect();
    sorted.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let mut out = match strategy {
        AssignmentStrategy::Range => range::assign(&sorted, topics),
        AssignmentStrategy::RoundRobin => round_robin::assign(&sorted, topics),
        AssignmentStrategy::CooperativeSticky => cooperative_sticky::assign(&sorted, topics),
    };
    for m in members {
        out.entry(m.member_id.clone()).or_default().sort();
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeSet;

    pub(crate) fn member(id: &str, topics: &[&str], owned: &[(&str, i32)]) -> Member {
        Member {
            member_id: id.into(),
            group_instance_id: None,
            subscription: Subscription {
                topics: topics.iter().map(|t| t.to_string()).collect(),
                owned: owned
                    .iter()
                    .map(|(t, p)| TopicPartition::new(*t, *p))
                    .collect(),
                generation: 1,
                user_data: None,
            },
        }
    }

    /// Every partition of every subscribed topic goes to exactly one subscribed member.
    pub(crate) fn check_complete(
        a: &Assignment,
        members: &[Member],
        topics: &BTreeMap<String, i32>,
    ) {
        let mut seen = BTreeSet::new();
        for (id, parts) in a {
            let m = members.iter().find(|m| &m.member_id == id).unwrap();
            for tp in parts {
                assert!(m.subscription.topics.contains(&tp.topic), "{id} got {tp:?}");
                assert!(seen.insert(tp.clone()), "{tp:?} twice");
            }
        }
        let want: usize = topics
            .iter()
            .filter(|(t, _)| members.iter().any(|m| m.subscription.topics.contains(t)))
            .map(|(_, n)| *n as usize)
            .sum();
        assert_eq!(seen.len(), want);
    }

    #[test]
    fn every_strategy_covers_all_partitions_once() {
        let topics: BTreeMap<String, i32> = [("a".to_string(), 7), ("b".to_string(), 3)].into();
        let members = vec![
            member("m1", &["a", "b"], &[]),
            member("m2", &["a"], &[]),
            member("m3", &["a", "b"], &[]),
        ];
        for s in [
            AssignmentStrategy::Range,
            AssignmentStrategy::RoundRobin,
            AssignmentStrategy::CooperativeSticky,
        ] {
            let a = assign(s, &members, &topics);
            check_complete(&a, &members, &topics);
        }
    }
}
