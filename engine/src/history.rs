//! Bounded histories: logs that keep their newest entries and never grow past a fixed size.
//!
//! One place trims every such log (a task's acknowledgements and declines, the checkpoint statistics, the platform's
//! alerts), so the rule is written and tested once: the oldest entry makes room for the newest, exactly at the limit.

/// Appends `item` to `items`, first dropping the oldest entry if `items` already holds `keep`.
pub fn push_bounded<T>(items: &mut Vec<T>, item: T, keep: usize) {
    assert!(keep > 0, "a bounded history keeps at least one entry");
    assert!(items.len() <= keep, "a bounded history holds {} entries, above its {keep}", items.len());
    if items.len() == keep {
        items.remove(0);
    }
    items.push(item);
    assert!(items.len() <= keep, "a bounded history grows past {keep}");
}

#[cfg(test)]
mod tests {
    use super::push_bounded;

    #[test]
    fn keeps_the_newest_entries_up_to_the_limit() {
        let mut log = Vec::new();
        for i in 0..3 {
            push_bounded(&mut log, i, 3);
        }
        assert_eq!(log, vec![0, 1, 2], "nothing dropped below the limit");
        push_bounded(&mut log, 3, 3);
        push_bounded(&mut log, 4, 3);
        assert_eq!(log, vec![2, 3, 4], "the oldest make room for the newest, the log stays at its limit");
    }

    #[test]
    fn a_limit_of_one_keeps_only_the_newest() {
        let mut log = vec![7];
        push_bounded(&mut log, 8, 1);
        assert_eq!(log, vec![8]);
    }
}
