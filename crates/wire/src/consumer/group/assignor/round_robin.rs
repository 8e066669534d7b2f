//! `roundrobin` (Java's `RoundRobinAssignor`): all partitions, sorted by topic and
//! index, dealt to the sorted members in turn, skipping members not subscribed to the
//! partition's topic.

use std::collections::BTreeMap;

use super::{Assignment, Member};
use crate::consumer::TopicPartition;

pub(super) fn assign(members: &[&Member], topics: &BTreeMap<String, i32>) -> Assignment {
    let mut out = Assignment::new();
    if members.is_empty() {
        return out;
    }
    let mut next = 0usize;
    for (topic, &count) in topics {
        if !members
            .iter()
            .any(|m| m.subscription.topics.contains(topic))
        {
            continue;
        }
        for p in 0..count {
            loop {
                let m = members[next % members.len()];
                next += 1;
                if m.subscription.topics.contains(topic) {
                    out.entry(m.member_id.clone())
                        .or_default()
                        .push(TopicPartition::new(topic.clone(), p));
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::member;
    use super::super::{assign, AssignmentStrategy};
    use crate::consumer::TopicPartition;
    use std::collections::BTreeMap;

    #[test]
    fn deals_in_turn() {
        let topics: BTreeMap<String, i32> = [("t".to_string(), 5)].into();
        let members = vec![member("a", &["t"], &[]), member("b", &["t"], &[])];
        let a = assign(AssignmentStrategy::RoundRobin, &members, &topics);
        let tp = |p| TopicPartition::new("t", p);
        assert_eq!(a["a"], [tp(0), tp(2), tp(4)]);
        assert_eq!(a["b"], [tp(1), tp(3)]);
    }
}
