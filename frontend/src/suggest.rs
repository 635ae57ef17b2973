//! "Did you mean …?": the closest known name by edit distance.
//!
//! The threshold follows rustc (a third of the name's length, at least one
//! edit), and a case-insensitive match always wins, because `linear` for
//! `Linear` or `Relu` for `ReLU` is the commonest slip of a PyTorch user.

/// Levenshtein distance over chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `name`, if one is close enough.
pub fn did_you_mean<'c>(name: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<String> {
    let limit = (name.chars().count().max(3) / 3).max(1);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        if c == name {
            continue;
        }
        let d = if c.eq_ignore_ascii_case(name) { 0 } else { edit_distance(name, c) };
        // Replacing every character of a short name is not a typo.
        if d >= name.chars().count().max(1) && d > 0 {
            continue;
        }
        if d <= limit && best.is_none_or(|(bd, bc)| (d, c) < (bd, bc)) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("relu", "relu"), 0);
    }

    #[test]
    fn suggestions_pick_the_closest_and_respect_case() {
        assert_eq!(did_you_mean("Linaer", ["Linear", "Flatten"]).as_deref(), Some("Linear"));
        assert_eq!(did_you_mean("Relu", ["ReLU", "relu"]).as_deref(), Some("ReLU"));
        assert_eq!(did_you_mean("xyz", ["Linear"]), None);
        assert_eq!(did_you_mean("z", ["h", "x"]), None);
        assert_eq!(did_you_mean("fc", ["fc1"]).as_deref(), Some("fc1"));
        assert_eq!(did_you_mean("adm", ["adam", "sgd"]).as_deref(), Some("adam"));
    }
}
