//! What the scenario configures, read by the checkers themselves from the scenario as written and the documented
//! rules (scenarios/README.md), never from the engine's own computation: a checker that reused the engine's split
//! would share its bugs.

/// The share of each partition in `total` (records of a batch source, or records per second of a streaming one), as
/// scenarios/README.md defines `skew`: partition `p` gets `floor(total × w_p / Σw)`; the units left over go one each
/// to the partitions with the largest remainders `total × w_p mod Σw`, the lower partition first on a tie. A
/// partition of weight 0 gets nothing. Computed in 128 bits, so that no product overflows.
pub fn shares(total: u64, weights: &[u64]) -> Vec<u64> {
    let sum: u128 = weights.iter().map(|w| *w as u128).sum();
    assert!(sum > 0, "a validated skew has a positive weight");
    let product = |w: u64| total as u128 * w as u128;
    let mut out: Vec<u64> = weights.iter().map(|w| (product(*w) / sum) as u64).collect();
    let given: u128 = out.iter().map(|s| *s as u128).sum();
    let mut left = total as u128 - given;
    // Candidates for a unit left over: positive weights, largest remainder first, then the lower partition.
    let mut order: Vec<(u128, usize)> =
        weights.iter().enumerate().filter(|(_, w)| **w > 0).map(|(p, w)| (product(*w) % sum, p)).collect();
    order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    assert!(left <= order.len() as u128, "fewer units left over than partitions with a remainder");
    for (_, p) in order {
        if left == 0 {
            break;
        }
        out[p] += 1;
        left -= 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_follow_the_documented_rule() {
        assert_eq!(shares(300, &[8, 1, 1]), vec![240, 30, 30]);
        assert_eq!(shares(10, &[1, 1, 1]), vec![4, 3, 3], "one left over: the lower partition on a tie");
        assert_eq!(shares(11, &[1, 1, 1]), vec![4, 4, 3]);
        assert_eq!(shares(7, &[2, 0, 3]), vec![3, 0, 4], "remainders 14 % 5 = 4 and 21 % 5 = 1: partition 0 first");
        assert_eq!(shares(0, &[1, 2]), vec![0, 0]);
        assert_eq!(shares(u64::MAX, &[u64::MAX, 1]).iter().map(|s| *s as u128).sum::<u128>(), u64::MAX as u128);
    }
}
