//! `range` (Java's `RangeAssignor`): per topic, the members subscribed to it (sorted)
//! each get a contiguous range; the first `partitions % members` get one extra.

use std::collections::BTreeMap;

use super::{Assignment, Member};
use crate::consumer::TopicPartition;

pub(super) fn assign(members: &[&Member], topics: &BTreeMap<String, i32>) -> Assignment {
    let mut out = Assignment::new();
    for (topic, &count) in topics {
        let subscribed: Vec<&&Member> = members
            .iter()
            .filter(|m| m.subscription.topics.contains(topic))
            .collect();
        if subscribed.is_empty() {
            continue;
        }
        let n = subscribed.len() as i32;
        let (per, extra) = (count / n, count % n);
        for (i, m) in subscribed.iter().enumerate() {
            let i = i as i32;
            let start = per * i + i.min(extra);
            let len = per + i32::from(i < extra);
            out.entry(m.member_id.clone())
                .or_default()
                .extend((start..start + len).map(|p| TopicPartition::new(topic.clone(), p)));
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
    fn ranges_as_java_computes_them() {
        let topics: BTreeMap<String, i32> = [("t".to_string(), 7)].into();
        let members = vec![member("b", &["t"], &[]), member("a", &["t"], &[])];
        let a = assign(AssignmentStrategy::Range, &members, &topics);
        let tp = |p| TopicPartition::new("t", p);
        assert_eq!(a["a"], [tp(0), tp(1), tp(2), tp(3)]);
        assert_eq!(a["b"], [tp(4), tp(5), tp(6)]);
    }
}
