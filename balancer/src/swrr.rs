//! Smooth weighted round robin (nginx's algorithm).
//!
//! Each candidate's `current` grows by its weight; the largest `current` is
//! picked (ties: the candidate listed first) and loses the candidates' total
//! weight. Over any `total` consecutive picks of an unchanged candidate set
//! starting from all-zero counters, each candidate is picked exactly
//! `weight` times, spread as evenly as possible. Counters of members that
//! are not candidates are left alone.
//!
//! The sum of all counters stays zero (each step adds and removes `total`),
//! so they stay bounded; arithmetic saturates anyway so that no input panics.

/// Advances `state` by one pick over `candidates` (`(index into state,
/// weight)`, in tie-break order) and returns the picked index. `None` if no
/// candidate indexes into `state`.
pub(crate) fn step(
    state: &mut [i64],
    candidates: impl Iterator<Item = (usize, u32)>,
) -> Option<usize> {
    let mut total: i64 = 0;
    let mut best: Option<(usize, i64)> = None;
    for (i, w) in candidates {
        let Some(c) = state.get_mut(i) else {
            continue;
        };
        let w = i64::from(w);
        *c = c.saturating_add(w);
        total = total.saturating_add(w);
        if best.is_none_or(|(_, b)| *c > b) {
            best = Some((i, *c));
        }
    }
    let (i, _) = best?;
    if let Some(c) = state.get_mut(i) {
        *c = c.saturating_sub(total);
    }
    Some(i)
}

/// The index `step` would pick, without changing anything. Indices beyond
/// `state` count as zero.
pub(crate) fn peek(state: &[i64], candidates: impl Iterator<Item = (usize, u32)>) -> Option<usize> {
    let mut best: Option<(usize, i64)> = None;
    for (i, w) in candidates {
        let c = state
            .get(i)
            .copied()
            .unwrap_or(0)
            .saturating_add(i64::from(w));
        if best.is_none_or(|(_, b)| c > b) {
            best = Some((i, c));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(weights: &[u32], n: usize) -> Vec<usize> {
        let mut state = vec![0i64; weights.len()];
        let mut counts = vec![0usize; weights.len()];
        for _ in 0..n {
            let i = step(&mut state, weights.iter().copied().enumerate()).unwrap();
            counts[i] += 1;
        }
        counts
    }

    #[test]
    fn three_to_one_is_exact() {
        assert_eq!(run(&[3, 1], 10_000), vec![7_500, 2_500]);
    }

    #[test]
    fn one_one_two_is_exact() {
        assert_eq!(run(&[1, 1, 2], 4_000), vec![1_000, 1_000, 2_000]);
    }

    #[test]
    fn sequence_is_smooth_and_ties_go_to_first() {
        let mut state = vec![0i64; 3];
        let seq: Vec<usize> = (0..7)
            .map(|_| step(&mut state, [5u32, 1, 1].into_iter().enumerate()).unwrap())
            .collect();
        // nginx's documented sequence for weights 5,1,1: a a b a c a a.
        assert_eq!(seq, vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(state, vec![0, 0, 0]);
    }

    #[test]
    fn peek_matches_step_and_changes_nothing() {
        let mut state = vec![0i64; 3];
        for _ in 0..50 {
            let before = state.clone();
            let p = peek(&state, [2u32, 3, 1].into_iter().enumerate());
            assert_eq!(state, before);
            assert_eq!(p, step(&mut state, [2u32, 3, 1].into_iter().enumerate()));
        }
    }

    #[test]
    fn non_candidates_keep_their_counter() {
        let mut state = vec![0i64, 7, 0];
        for _ in 0..10 {
            step(&mut state, [(0usize, 1u32), (2, 1)].into_iter());
        }
        assert_eq!(state[1], 7);
    }

    #[test]
    fn no_candidate_or_out_of_range() {
        let mut state = vec![0i64; 2];
        assert_eq!(step(&mut state, std::iter::empty()), None);
        assert_eq!(step(&mut state, [(5usize, 1u32)].into_iter()), None);
        assert_eq!(peek(&state, std::iter::empty()), None);
    }
}
