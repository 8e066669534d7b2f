//! Per-topic state with a fast path for the topic seen last (producers usually send runs of
//! records to one topic, and a string compare is cheaper than hashing the name).

use std::collections::HashMap;

#[derive(Debug)]
pub(crate) struct TopicMap<T> {
    index: HashMap<String, usize>,
    entries: Vec<(String, T)>,
    last: usize,
}

impl<T> Default for TopicMap<T> {
    fn default() -> Self {
        Self {
            index: HashMap::new(),
            entries: Vec::new(),
            last: 0,
        }
    }
}

impl<T> TopicMap<T> {
    pub(crate) fn get_or_insert_with(&mut self, topic: &str, make: impl FnOnce() -> T) -> &mut T {
        let hit = matches!(self.entries.get(self.last), Some((name, _)) if name == topic);
        if !hit {
            self.last = match self.index.get(topic) {
                Some(&i) => i,
                None => {
                    let i = self.entries.len();
                    self.entries.push((topic.to_owned(), make()));
                    self.index.insert(topic.to_owned(), i);
                    i
                }
            };
        }
        // `last` is always a valid index here: it was just found or pushed.
        &mut self.entries[self.last].1
    }

    pub(crate) fn get(&self, topic: &str) -> Option<&T> {
        self.index
            .get(topic)
            .and_then(|&i| self.entries.get(i))
            .map(|(_, t)| t)
    }
}
